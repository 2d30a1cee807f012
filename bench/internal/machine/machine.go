// Package machine describes the machine a benchmark ran on: CPU model,
// cores, memory, kernel, operating system, Go version, tool versions and
// load average, so that every published figure says where it came from.
package machine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Info describes a machine.
type Info struct {
	CPU         string            `json:"cpu"`
	Cores       int               `json:"cores"`
	MemoryBytes int64             `json:"memory_bytes"`
	Kernel      string            `json:"kernel"`
	OS          string            `json:"os"`
	Go          string            `json:"go"`
	Tools       map[string]string `json:"tools"`
	Date        string            `json:"date"`
	// LoadAvg is the 1, 5 and 15 minute load average when Describe ran.
	LoadAvg [3]float64 `json:"load_avg"`
}

// Describe reads the description of this machine. A part that cannot be
// read is left empty; only the load average is required.
func Describe(ctx context.Context) (Info, error) {
	in := Info{
		Cores: runtime.NumCPU(),
		Go:    runtime.Version(),
		Date:  time.Now().UTC().Format(time.RFC3339),
		Tools: map[string]string{},
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		in.CPU = cpuModel(b)
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		in.MemoryBytes = memTotal(b)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		in.Kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		in.OS = prettyName(b)
	}
	for name, args := range map[string][]string{
		"openssl":   {"openssl", "version"},
		"sha256sum": {"sha256sum", "--version"},
		"wrk":       {"wrk", "-v"},
	} {
		in.Tools[name] = firstLine(ctx, args...)
	}
	la, err := LoadAvg()
	if err != nil {
		return in, err
	}
	in.LoadAvg = la
	return in, nil
}

// LoadAvg reads the 1, 5 and 15 minute load average.
func LoadAvg() ([3]float64, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return [3]float64{}, fmt.Errorf("read load average: %w", err)
	}
	return parseLoadAvg(b)
}

func parseLoadAvg(b []byte) ([3]float64, error) {
	var out [3]float64
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return out, fmt.Errorf("load average %q: want three numbers", strings.TrimSpace(string(b)))
	}
	for i := range 3 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return out, fmt.Errorf("load average %q: %w", strings.TrimSpace(string(b)), err)
		}
		out[i] = v
	}
	return out, nil
}

func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func memTotal(meminfo []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return 0
}

func prettyName(osRelease []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(osRelease))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// firstLine runs a command and returns the first line it printed, "" when
// it could not run.
func firstLine(ctx context.Context, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// Summary is the one-line description used in tables.
func (in Info) Summary() string {
	return fmt.Sprintf("%s, %d cores, %.0f GiB, Linux %s, %s, %s",
		orUnknown(in.CPU), in.Cores, float64(in.MemoryBytes)/(1<<30), orUnknown(in.Kernel), orUnknown(in.OS), in.Go)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
