package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// limits are the unit's resource settings (CPUQuota=, MemoryMax=, TasksMax=).
type limits struct {
	CPUPercent int   // of one CPU per 100 ms period; 0: no quota
	MemoryMax  int64 // bytes; -1: no limit
	TasksMax   int   // -1: no limit
}

// group is one cgroup holding a process tree under measurement: a directory
// of the unified hierarchy (cgroup v2), or one directory in each of the v1
// hierarchies cpu, cpuacct, memory and pids. On v1 each is a child of the
// cgroup this process runs in, so the benchmark stays inside whatever
// confines it; on v2 it is a child of the root, the one cgroup that may hold
// both processes and controllers.
type group struct {
	v2   bool
	dirs map[string]string // v1: controller → directory; v2: "" → directory
}

const cgroupFS = "/sys/fs/cgroup"

// newGroup creates a group named name with lim applied.
func newGroup(name string, lim limits) (*group, error) {
	if _, err := os.Stat(filepath.Join(cgroupFS, "cgroup.controllers")); err == nil {
		return newGroupV2(name, lim)
	}
	return newGroupV1(name, lim)
}

func newGroupV2(name string, lim limits) (*group, error) {
	if err := os.WriteFile(filepath.Join(cgroupFS, "cgroup.subtree_control"), []byte("+cpu +memory +pids"), 0); err != nil {
		return nil, fmt.Errorf("cgroup v2: enable cpu, memory and pids: %w", err)
	}
	dir := filepath.Join(cgroupFS, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	g := &group{v2: true, dirs: map[string]string{"": dir}}
	quota, mem, tasks := "max", "max", "max"
	if lim.CPUPercent > 0 {
		quota = strconv.Itoa(lim.CPUPercent * 1000)
	}
	if lim.MemoryMax > 0 {
		mem = strconv.FormatInt(lim.MemoryMax, 10)
	}
	if lim.TasksMax > 0 {
		tasks = strconv.Itoa(lim.TasksMax)
	}
	err := errors.Join(
		write(dir, "cpu.max", quota+" 100000"),
		write(dir, "memory.max", mem),
		write(dir, "pids.max", tasks))
	if err != nil {
		g.remove()
		return nil, err
	}
	return g, nil
}

func newGroupV1(name string, lim limits) (*group, error) {
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	g := &group{dirs: map[string]string{}}
	created := map[string]string{} // real path of a hierarchy → our directory in it
	for _, ctrl := range []string{"cpu", "cpuacct", "memory", "pids"} {
		mount, err := filepath.EvalSymlinks(filepath.Join(cgroupFS, ctrl))
		if err != nil {
			g.remove()
			return nil, fmt.Errorf("cgroup v1: no %s hierarchy: %w", ctrl, err)
		}
		if dir, ok := created[mount]; ok { // co-mounted (cpu,cpuacct)
			g.dirs[ctrl] = dir
			continue
		}
		dir := filepath.Join(mount, own[ctrl], name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			g.remove()
			return nil, fmt.Errorf("cgroup v1: %w", err)
		}
		created[mount], g.dirs[ctrl] = dir, dir
	}
	quota, tasks := "-1", "max"
	if lim.CPUPercent > 0 {
		quota = strconv.Itoa(lim.CPUPercent * 1000)
	}
	if lim.TasksMax > 0 {
		tasks = strconv.Itoa(lim.TasksMax)
	}
	err = errors.Join(
		write(g.dirs["cpu"], "cpu.cfs_period_us", "100000"),
		write(g.dirs["cpu"], "cpu.cfs_quota_us", quota),
		write(g.dirs["memory"], "memory.limit_in_bytes", strconv.FormatInt(lim.MemoryMax, 10)),
		write(g.dirs["pids"], "pids.max", tasks))
	if err != nil {
		g.remove()
		return nil, err
	}
	return g, nil
}

// ownCgroups reads /proc/self/cgroup: v1 controller → this process's path.
func ownCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	own := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	return own, sc.Err()
}

func write(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	return nil
}

func (g *group) file(ctrl, v1, v2 string) string {
	if g.v2 {
		return filepath.Join(g.dirs[""], v2)
	}
	return filepath.Join(g.dirs[ctrl], v1)
}

// start starts cmd in the group: the process is born there, so the
// program and all it starts run in the group from their first instruction,
// as systemd starts a unit's process in its cgroup. On v2 clone3 places it
// in the group's directory (CLONE_INTO_CGROUP, Linux 5.7); on v1, where a
// thread can be moved on its own, a thread of this process joins the
// group for that one fork and goes back: the group is charged for that
// thread's side of the fork, nothing else. (The group's processes used to
// start as a shell that moved itself into the group and executed the
// program: about 2 ms of the group's CPU, a dynamically linked dash
// starting, that the unit does not spend.)
func (g *group) start(cmd *exec.Cmd) error {
	if g.v2 {
		return g.startV2(cmd)
	}
	errc := make(chan error, 1)
	go func() { errc <- g.forkFromThread(cmd) }()
	return <-errc
}

func (g *group) startV2(cmd *exec.Cmd) error {
	dir, err := os.Open(g.dirs[""])
	if err != nil {
		return fmt.Errorf("cgroup v2: %w", err)
	}
	defer dir.Close()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
	err = cmd.Start()
	if errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.E2BIG) {
		return fmt.Errorf("cgroup v2: start %s in %s with clone3(CLONE_INTO_CGROUP), which needs Linux 5.7 and a clone3 no seccomp filter refuses: %w", cmd.Path, g.dirs[""], err)
	}
	return err
}

// forkFromThread is start on v1, run on a goroutine of its own. The
// thread it locks is never the main thread (package main locks that to
// the main goroutine): the main thread leads the thread group and owns
// its memory, so while it sat in the group every page the benchmark
// touched would be charged to the group's memory cgroup.
func (g *group) forkFromThread(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	tid := syscall.Gettid()
	if tid == syscall.Getpid() {
		runtime.UnlockOSThread()
		return errors.New("cgroup v1: the fork would run on the main thread (package main must lock it in init)")
	}
	var err error
	for _, dir := range g.distinctDirs() {
		if err = write(dir, "tasks", strconv.Itoa(tid)); err != nil {
			break
		}
	}
	if err == nil {
		err = cmd.Start() // forks from this thread, in the group
	}
	for _, dir := range g.distinctDirs() {
		// Back to the parent: the cgroup this process runs in
		// (newGroupV1 made the group a child of it).
		if werr := write(filepath.Dir(dir), "tasks", strconv.Itoa(tid)); werr != nil {
			// The thread stays locked and ends with this goroutine; the
			// child, started or not, must not run on.
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			return errors.Join(err, fmt.Errorf("cgroup v1: the forking thread cannot leave the group %s: %w", dir, werr))
		}
	}
	runtime.UnlockOSThread()
	return err
}

// distinctDirs are the group's directories, each once (v1's cpu and
// cpuacct may be one hierarchy).
func (g *group) distinctDirs() []string {
	var dirs []string
	seen := map[string]bool{}
	for _, dir := range g.dirs {
		if !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
	}
	sort.Strings(dirs)
	return dirs
}

// cpu is the CPU time the group's processes used so far.
func (g *group) cpu() (time.Duration, error) {
	if g.v2 {
		v, err := readKey(g.file("", "", "cpu.stat"), "usage_usec")
		return time.Duration(v) * time.Microsecond, err
	}
	v, err := readInt(g.file("cpuacct", "cpuacct.usage", ""))
	return time.Duration(v), err
}

// peaks are the most a group held at once.
type peaks struct {
	Tasks  int64 // threads, as the kernel counted them (pids.peak): what TasksMax= limits
	Charge int64 // memory charged, page cache included (what MemoryMax= limits), as the kernel recorded it
	RSS    int64 // resident memory summed over the processes, sampled (rss)
	Anon   int64 // of which anonymous (not file-backed), sampled the same way
}

// kernelPeaks reads Tasks and Charge.
func (g *group) kernelPeaks() (peaks, error) {
	tasks, err := readInt(g.file("pids", "pids.peak", "pids.peak"))
	if err != nil {
		return peaks{}, err
	}
	mem, err := readInt(g.file("memory", "memory.max_usage_in_bytes", "memory.peak"))
	return peaks{Tasks: tasks, Charge: mem}, err
}

// rss sums the resident memory of the group's processes every 10 ms until
// stop is closed, and then sends the largest sums (RSS and Anon). A
// process's file pages (its executable) count in full in RSS: an upper
// bound of what the processes hold resident.
func (g *group) rss(stop <-chan struct{}) <-chan peaks {
	out := make(chan peaks, 1)
	procs := g.file("memory", "cgroup.procs", "cgroup.procs")
	page := int64(os.Getpagesize())
	go func() {
		var peak peaks
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var rss, anon int64
			b, _ := os.ReadFile(procs)
			for _, pid := range strings.Fields(string(b)) {
				// statm: size resident shared(file-backed) … in pages
				statm, _ := os.ReadFile("/proc/" + pid + "/statm")
				if f := strings.Fields(string(statm)); len(f) > 2 {
					res, _ := strconv.ParseInt(f[1], 10, 64)
					shared, _ := strconv.ParseInt(f[2], 10, 64)
					rss, anon = rss+res*page, anon+(res-shared)*page
				}
			}
			peak.RSS, peak.Anon = max(peak.RSS, rss), max(peak.Anon, anon)
			select {
			case <-stop:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return out
}

// remove removes the group once its processes are gone (a plugin may still
// be exiting when the daemon has).
func (g *group) remove() {
	for _, dir := range g.dirs {
		for i := 0; i < 100; i++ {
			if err := os.Remove(dir); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func readKey(path, key string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}
