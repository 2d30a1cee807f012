// Package pluginhost runs the runtime-attestor's check plugins: it discovers
// the executables attestor-check-<name> in the plugin directory, refuses the
// ones it cannot trust, starts each enabled plugin once through go-plugin
// (gRPC, AutoMTLS), describes and configures it, asks it for measurements
// under per-plugin timeouts with bounded parallelism, and restarts a dead
// plugin with exponential backoff. It never trusts a plugin to behave: every
// fault — missing, untrusted, crashed, timed out, protocol violation, failed
// check, refused configuration — becomes a core.plugin_* finding in one place
// (fault.go), and the host goes on.
//
// # Trust and TOCTOU
//
// Before every start the host opens the file (a symlink only if it resolves
// inside the plugin directory), checks through the open descriptor that it is
// a regular file owned by root or the daemon's own user and neither group-
// nor world-writable, hashes it through that descriptor and compares the
// SHA-256 with the policy's pin. It then executes that very descriptor
// (through a private symlink to /proc/self/fd/N), so a file renamed over the
// plugin after the check is never run; go-plugin's SecureConfig hashes the
// same descriptor once more right before the fork. At every attestation the
// host compares the file's identity (device, inode, size, mode, owner, mtime,
// ctime) with the one it verified and re-verifies on any change, so a plugin
// replaced between two attestations is refused before its new binary runs,
// and an unpinned plugin that was upgraded is restarted on its new binary.
//
// # No orphans
//
// Each plugin runs in its own process group with Pdeathsig=SIGKILL and, when
// the daemon may create namespaces, as PID 1 of its own PID namespace, so
// that when the plugin dies the kernel kills every descendant, even one that
// left the process group with setsid. Without the privilege (EPERM) the host
// falls back to process group and Pdeathsig alone and logs that once; then a
// descendant that calls setsid can outlive the plugin, and only the service's
// cgroup (systemd KillMode=control-group) catches it.
//
// Pdeathsig fires when the thread that forked the plugin exits, not the
// process. The host therefore forks plugins only from its worker goroutines,
// each of which holds runtime.LockOSThread for the life of the host: Go never
// reuses or ends a locked thread while its goroutine runs, so a plugin's
// parent thread lives exactly as long as the host. A worker exits still
// locked when the host closes, which ends its thread.
package pluginhost
