package launcher

import "syscall"

// pluginNice is the nice value of every plugin process.
const pluginNice = 19

// lowerPriority gives the plugin process the lowest priority before it
// executes the plugin (execve keeps it): inside the unit's cgroup the
// daemon's threads, the API's among them, then run before a plugin's
// whenever both want the CPU in a quota period. Lowering one's own
// priority needs no privilege; the daemon's seccomp profile allows it for
// this step, the plugin's own profile does not (a plugin cannot renice the
// daemon, by PID or as PRIO_USER). A failure leaves the priority as it was
// (the plugin still runs, at the daemon's priority).
func lowerPriority() {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, 0, pluginNice)
}
