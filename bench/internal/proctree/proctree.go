// Package proctree measures a process together with all its descendants
// (the daemon and its plugin processes) from /proc: resident memory, thread
// count and CPU time, summed over the tree, once or sampled periodically
// for peaks.
package proctree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// TicksPerSecond is the unit of utime and stime in /proc/<pid>/stat
// (USER_HZ, 100 on every Linux architecture Go supports).
const TicksPerSecond = 100

// Usage is what a process tree uses at one moment.
type Usage struct {
	Procs    int    `json:"procs"`
	RSSBytes int64  `json:"rss_bytes"`
	Threads  int    `json:"threads"`
	CPUTicks uint64 `json:"cpu_ticks"` // utime+stime of the live processes
	// ChildTicks is cutime+cstime summed over the tree: the CPU time of
	// descendants that have exited and were reaped (plugins started for one
	// attestation). CPUTicks+ChildTicks only grows while the root lives.
	ChildTicks uint64 `json:"child_ticks"`
}

// stat is the part of /proc/<pid>/stat this package reads.
type stat struct {
	ppid       int
	threads    int
	rssPages   int64
	cpuTicks   uint64
	childTicks uint64
}

var pageSize = int64(os.Getpagesize())

// parseStat parses the content of /proc/<pid>/stat. The command name (field
// 2) is in parentheses and may hold spaces and parentheses itself, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (stat, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return stat{}, errors.New("no ')' after the command name")
	}
	f := bytes.Fields(b[end+1:])
	// f[0] is field 3 (state); field k is f[k-3].
	if len(f) < 22 {
		return stat{}, fmt.Errorf("%d fields after the command name, want at least 22", len(f))
	}
	num := func(k int) (int64, error) {
		v, err := strconv.ParseInt(string(f[k-3]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", k, err)
		}
		return v, nil
	}
	var s stat
	var vals [7]int64
	for i, k := range []int{4, 14, 15, 20, 24, 16, 17} { // ppid, utime, stime, num_threads, rss, cutime, cstime
		v, err := num(k)
		if err != nil {
			return stat{}, err
		}
		vals[i] = v
	}
	s.ppid = int(vals[0])
	s.cpuTicks = uint64(vals[1] + vals[2])
	s.threads = int(vals[3])
	s.rssPages = vals[4]
	s.childTicks = uint64(vals[5] + vals[6])
	return s, nil
}

func readStat(proc string, pid int) (stat, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, err
	}
	s, err := parseStat(b)
	if err != nil {
		return stat{}, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// Tree returns pid followed by every live descendant of it, found from the
// parent of every process in /proc.
func Tree(pid int) ([]int, error) { return NewTracker(pid).Members() }

// Read sums the usage of pid and its descendants.
func Read(pid int) (Usage, error) { return NewTracker(pid).Read() }

// Tracker follows one process tree across repeated looks. It reads the stat
// file of a process outside the tree once, when it first sees it, so that a
// look costs a listing of /proc and the tree's own stat files: cheap enough
// to catch plugin processes that live a fraction of a second. A process
// that is gone is forgotten at the next look; its id comes back only after
// the kernel's pid counter has gone round pid_max, which takes far longer
// than the time between two looks.
type Tracker struct {
	proc   string
	root   int
	parent map[int]int // pid → ppid, for every process seen
}

// NewTracker follows pid's tree.
func NewTracker(pid int) *Tracker { return &Tracker{proc: "/proc", root: pid, parent: map[int]int{}} }

// Members returns the root followed by its live descendants.
func (t *Tracker) Members() ([]int, error) {
	d, err := os.Open(t.proc)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t.proc, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t.proc, err)
	}
	live := make(map[int]bool, len(names))
	children := map[int][]int{}
	for _, name := range names {
		p, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		live[p] = true
		ppid, ok := t.parent[p]
		if !ok {
			s, err := readStat(t.proc, p)
			if err != nil {
				continue // exited meanwhile
			}
			ppid = s.ppid
			t.parent[p] = ppid
		}
		children[ppid] = append(children[ppid], p)
	}
	for p := range t.parent {
		if !live[p] {
			delete(t.parent, p)
		}
	}
	if !live[t.root] {
		return nil, fmt.Errorf("process %d: not running", t.root)
	}
	out := []int{t.root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	slices.Sort(out[1:])
	return out, nil
}

// Read sums the usage of the tree now.
func (t *Tracker) Read() (Usage, error) {
	pids, err := t.Members()
	if err != nil {
		return Usage{}, err
	}
	return readAll(t.proc, pids), nil
}

// readAll sums the usage of pids, skipping the ones that are gone.
func readAll(proc string, pids []int) Usage {
	var u Usage
	for _, p := range pids {
		s, err := readStat(proc, p)
		if err != nil {
			continue
		}
		u.Procs++
		u.Threads += s.threads
		u.RSSBytes += s.rssPages * pageSize
		u.CPUTicks += s.cpuTicks
		u.ChildTicks += s.childTicks
	}
	return u
}

// Peak is the largest usage a Sampler saw.
type Peak struct {
	RSSBytes int64 `json:"rss_bytes"`
	Threads  int   `json:"threads"`
	Procs    int   `json:"procs"`
	Samples  int   `json:"samples"`
}

// Sampler looks at a process tree periodically, the tree's membership
// included, and keeps the peaks of the sums.
type Sampler struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	peak   Peak
	err    error
}

// Sample starts sampling pid's tree every interval until Stop.
func Sample(pid int, interval time.Duration) *Sampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sampler{cancel: cancel, done: make(chan struct{})}
	tr := NewTracker(pid)
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			u, err := tr.Read()
			if err != nil {
				s.mu.Lock()
				if s.peak.Samples == 0 {
					s.err = err
				}
				s.mu.Unlock()
				return
			}
			s.mu.Lock()
			s.peak.Samples++
			s.peak.RSSBytes = max(s.peak.RSSBytes, u.RSSBytes)
			s.peak.Threads = max(s.peak.Threads, u.Threads)
			s.peak.Procs = max(s.peak.Procs, u.Procs)
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends sampling and returns the peaks. It fails when the process was
// gone before the first sample.
func (s *Sampler) Stop() (Peak, error) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.err
}
