//go:build !cgo

package sandbox

// cgoBuild: without cgo, go-landlock reaches other threads through the Go
// runtime's AllThreadsSyscall, which needs no /proc.
const cgoBuild = false
