package proctree

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// statLine builds a /proc/<pid>/stat line with the fields this package
// reads set and the others plausible.
func statLine(pid int, comm string, ppid, utime, stime, threads, rss int) string {
	return statLineChildren(pid, comm, ppid, utime, stime, 0, 0, threads, rss)
}

func statLineChildren(pid int, comm string, ppid, utime, stime, cutime, cstime, threads, rss int) string {
	return fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 100 0 0 0 %d %d %d %d 20 0 %d 0 100 1000 %d 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
		pid, comm, ppid, pid, pid, utime, stime, cutime, cstime, threads, rss)
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	self, err := os.ReadFile("testdata/self.stat")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		in      string
		want    stat
		wantErr bool
	}{
		{in: statLine(42, "plain", 7, 11, 4, 9, 250), want: stat{ppid: 7, threads: 9, rssPages: 250, cpuTicks: 15}},
		{in: statLine(42, "odd) name (x", 1, 0, 0, 1, 3), want: stat{ppid: 1, threads: 1, rssPages: 3}},
		{in: statLine(42, "with space", 2, 5, 5, 3, 4), want: stat{ppid: 2, threads: 3, rssPages: 4, cpuTicks: 10}},
		{in: statLineChildren(42, "reaper", 2, 5, 5, 30, 12, 3, 4), want: stat{ppid: 2, threads: 3, rssPages: 4, cpuTicks: 10, childTicks: 42}},
		{in: string(self), want: stat{}}, // checked below: must parse
		{in: "42 no-parens S 1 2 3", wantErr: true},
		{in: "42 (short) S 1 2 3", wantErr: true},
		{in: statLine(42, "x", 1, 0, 0, 1, 3)[:40], wantErr: true},
		{in: "42 (x) S notanumber 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 100 1000 250 1 1 1", wantErr: true},
	} {
		got, err := parseStat([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("Test %d: err = %v, wantErr %v", i, err, tc.wantErr)
			continue
		}
		if tc.in == string(self) {
			if err != nil || got.threads < 1 || got.rssPages < 1 {
				t.Errorf("Test %d: real stat line parsed as %+v, %v", i, got, err)
			}
			continue
		}
		if err == nil && got != tc.want {
			t.Errorf("Test %d: got %+v, want %+v", i, got, tc.want)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine(1, "init", 0, 1, 2, 1, 100)))
	f.Add([]byte("1 (a)"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := parseStat(b)
		if err != nil {
			return
		}
		end := bytes.LastIndexByte(b, ')')
		if end < 0 || len(bytes.Fields(b[end+1:])) < 22 {
			t.Fatalf("parseStat accepted %q, which has no 22 fields after ')'", b)
		}
	})
}

func TestTreeFixture(t *testing.T) {
	t.Parallel()
	proc := t.TempDir()
	write := func(pid int, line string) {
		d := filepath.Join(proc, strconv.Itoa(pid))
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(1, statLine(1, "init", 0, 1, 1, 1, 10))
	write(10, statLineChildren(10, "daemon", 1, 100, 50, 7, 3, 12, 1000))
	write(11, statLine(11, "plugin a", 10, 3, 1, 7, 500))
	write(12, statLine(12, "plugin b", 10, 2, 2, 7, 400))
	write(13, statLine(13, "grandchild", 12, 1, 0, 1, 100))
	write(20, statLine(20, "unrelated", 1, 9, 9, 9, 9))
	if err := os.MkdirAll(filepath.Join(proc, "self"), 0o700); err != nil {
		t.Fatal(err)
	}
	write(30, "garbage")

	tr := &Tracker{proc: proc, root: 10, parent: map[int]int{}}
	pids, err := tr.Members()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pids) != "[10 11 12 13]" {
		t.Fatalf("tree = %v, want [10 11 12 13]", pids)
	}
	u := readAll(proc, append(pids, 99)) // 99 does not exist: skipped
	want := Usage{Procs: 4, Threads: 27, RSSBytes: 2000 * pageSize, CPUTicks: 159, ChildTicks: 10}
	if u != want {
		t.Fatalf("usage = %+v, want %+v", u, want)
	}
	// A new descendant is found; a gone one is forgotten.
	write(14, statLine(14, "new plugin", 10, 0, 0, 3, 10))
	if err := os.RemoveAll(filepath.Join(proc, "11")); err != nil {
		t.Fatal(err)
	}
	if pids, err := tr.Members(); err != nil || fmt.Sprint(pids) != "[10 12 13 14]" {
		t.Fatalf("tree after changes = %v, %v; want [10 12 13 14]", pids, err)
	}
	if _, ok := tr.parent[11]; ok {
		t.Fatal("a gone process is still remembered")
	}
	u, err = tr.Read()
	if err != nil || u.Procs != 4 {
		t.Fatalf("Read = %+v, %v", u, err)
	}
	missing := &Tracker{proc: proc, root: 77, parent: map[int]int{}}
	if _, err := missing.Members(); err == nil {
		t.Fatal("tree of a missing process did not fail")
	}
}

func TestSampleRealTree(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	self := os.Getpid()
	pids, err := Tree(self)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pids {
		found = found || p == cmd.Process.Pid
	}
	if !found {
		t.Fatalf("child %d not in the tree %v", cmd.Process.Pid, pids)
	}
	s := Sample(self, 5*time.Millisecond)
	time.Sleep(30 * time.Millisecond)
	peak, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if peak.Samples < 1 || peak.Procs < 2 || peak.Threads < 2 || peak.RSSBytes <= 0 {
		t.Fatalf("peak = %+v, want at least this process and its child", peak)
	}
	u, err := Read(self)
	if err != nil || u.Procs < 2 {
		t.Fatalf("Read = %+v, %v", u, err)
	}
}

func TestSampleGoneProcess(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	s := Sample(cmd.Process.Pid, time.Millisecond)
	if _, err := s.Stop(); err == nil {
		t.Fatal("sampling a process that is gone did not fail")
	}
}
