package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// runtimeBase makes the folder under which each daemon run gets its
// runtime folder: on a tmpfs, as the unit's RuntimeDirectory (/run) is,
// so that the plugins' socket folders and grants cost what they cost
// there; else under work. It returns the folder and the file system it
// is on, for the report.
func runtimeBase(work string) (dir, fs string, err error) {
	for _, parent := range []string{"/run", "/dev/shm"} {
		var st unix.Statfs_t
		if unix.Statfs(parent, &st) != nil || st.Type != unix.TMPFS_MAGIC {
			continue
		}
		if d, err := os.MkdirTemp(parent, "attestor-bench-"); err == nil {
			return d, "tmpfs " + parent, nil
		}
	}
	d, err := os.MkdirTemp(work, "runtime-")
	if err != nil {
		return "", "", fmt.Errorf("runtime folder: %w", err)
	}
	return d, "no tmpfs writable: under " + work, nil
}
