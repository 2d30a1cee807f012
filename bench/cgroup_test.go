package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needCgroups(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
}

// TestGroup runs a shell loop through a group and checks what the
// benchmark relies on: the limits are written, the process runs in the
// group from its start, its CPU time and tasks are counted, and the group
// is gone after remove.
func TestGroup(t *testing.T) {
	needCgroups(t)
	name := fmt.Sprintf("attestor-bench-test-%d", os.Getpid())
	g, err := newGroup(name, limits{CPUPercent: 50, MemoryMax: 64 << 20, TasksMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer g.remove()
	quota, want := g.file("cpu", "cpu.cfs_quota_us", "cpu.max"), "50000"
	if g.v2 {
		want = "50000 100000"
	}
	if b, _ := os.ReadFile(quota); strings.TrimSpace(string(b)) != want {
		t.Errorf("%s = %q, want %q", quota, b, want)
	}
	if b, _ := os.ReadFile(g.file("pids", "pids.max", "pids.max")); strings.TrimSpace(string(b)) != "8" {
		t.Errorf("pids.max = %q, want 8", b)
	}
	// The child prints its own cgroups before it does anything else.
	cmd := exec.Command("/bin/sh", "-c", `cat /proc/self/cgroup; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done`)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := g.start(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	for _, ctrl := range []string{"cpu", "memory", "pids"} {
		if !inGroup(out.String(), ctrl, name, g.v2) {
			t.Errorf("child not in the %s group %s:\n%s", ctrl, name, out.String())
		}
	}
	// No thread of this process stays in the group (v1 forks from a
	// thread that joined it).
	tasks, _ := filepath.Glob("/proc/self/task/*/cgroup")
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		for _, ctrl := range []string{"cpu", "cpuacct", "memory", "pids"} {
			if inGroup(string(b), ctrl, name, g.v2) {
				t.Errorf("%s: a thread of the benchmark is still in the %s group:\n%s", f, ctrl, b)
			}
		}
	}
	if cpu, err := g.cpu(); err != nil || cpu <= 0 {
		t.Errorf("cpu() = %v, %v: want the loop's CPU time", cpu, err)
	}
	p, err := g.kernelPeaks()
	if err != nil || p.Tasks < 1 || p.Charge <= 0 {
		t.Errorf("kernelPeaks() = %+v, %v", p, err)
	}
	g.remove()
	for _, dir := range g.dirs {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still there after remove: %v", dir, err)
		}
	}
}

func inGroup(procCgroup, ctrl, name string, v2 bool) bool {
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || filepath.Base(parts[2]) != name {
			continue
		}
		if v2 && parts[0] == "0" {
			return true
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == ctrl {
				return true
			}
		}
	}
	return false
}

// TestGroupRefusesExisting: a group of that name made beforehand by
// someone else is not adopted (its limits and members are not ours).
func TestGroupRefusesExisting(t *testing.T) {
	needCgroups(t)
	name := fmt.Sprintf("attestor-bench-taken-%d", os.Getpid())
	first, err := newGroup(name, limits{CPUPercent: 10, MemoryMax: 64 << 20, TasksMax: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer first.remove()
	if g, err := newGroup(name, limits{CPUPercent: 10, MemoryMax: 64 << 20, TasksMax: 8}); err == nil {
		g.remove()
		t.Fatal("newGroup adopted an existing group")
	}
	for _, dir := range first.dirs {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("the failed attempt removed the existing group's %s: %v", dir, err)
		}
	}
}
