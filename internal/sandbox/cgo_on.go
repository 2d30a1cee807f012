//go:build cgo

package sandbox

// cgoBuild: with cgo, go-landlock reaches other threads (before Landlock ABI
// v8) through libpsx's C implementation, which lists /proc/<pid>/task.
const cgoBuild = true
