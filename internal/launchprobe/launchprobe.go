// Package launchprobe reads the state a process started in, for the
// launcher contract tests (core/pluginhost): testplugins/launchprobe, the
// program a launcher executes there, prints Read's report as JSON.
package launchprobe

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Report is the state a process started in.
type Report struct {
	// Argv0 is its argv[0].
	Argv0 string `json:"argv0"`
	// LauncherEnv says whether RUNTIME_ATTESTOR_LAUNCH is set.
	LauncherEnv bool `json:"launcher_env"`
	// GrantFD is RUNTIME_ATTESTOR_PLUGIN_GRANT_FD.
	GrantFD string `json:"grant_fd"`
	// OpenFDs are the descriptors from 3 to 7 that are open.
	OpenFDs []int `json:"open_fds"`
	// Nice is its nice value.
	Nice int `json:"nice"`
	// NoNewPrivs and Seccomp are prctl's PR_GET_NO_NEW_PRIVS and
	// PR_GET_SECCOMP (2: a filter).
	NoNewPrivs int `json:"no_new_privs"`
	Seccomp    int `json:"seccomp"`
	// ReadPasswd is how opening /etc/passwd ended: "ok", or the errno's
	// name (EACCES under Landlock).
	ReadPasswd string `json:"read_passwd"`
}

// Read reports the calling process's state.
func Read() Report {
	var r Report
	r.Argv0 = os.Args[0]
	_, r.LauncherEnv = os.LookupEnv("RUNTIME_ATTESTOR_LAUNCH")
	r.GrantFD = os.Getenv("RUNTIME_ATTESTOR_PLUGIN_GRANT_FD")
	for fd := 3; fd <= 7; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			r.OpenFDs = append(r.OpenFDs, fd)
		}
	}
	// The getpriority system call returns 20 - nice.
	if p, err := unix.Getpriority(unix.PRIO_PROCESS, 0); err == nil {
		r.Nice = 20 - p
	}
	r.NoNewPrivs, _ = unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	r.Seccomp, _ = unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	r.ReadPasswd = "ok"
	f, err := os.Open("/etc/passwd")
	if err != nil {
		r.ReadPasswd = err.Error()
		var errno syscall.Errno
		if errors.As(err, &errno) {
			r.ReadPasswd = unix.ErrnoName(errno)
		}
		return r
	}
	f.Close()
	return r
}
