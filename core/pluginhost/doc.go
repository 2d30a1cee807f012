// Package pluginhost runs the runtime-attestor's check plugins: it discovers
// the executables attestor-check-<name> in the plugin directory, refuses the
// ones it cannot trust, starts each enabled plugin confined, through its
// launcher and go-plugin (gRPC over its Unix socket, each peer checked by
// SO_PEERCRED: internal/peercred), describes and configures it, asks it for
// measurements under per-plugin timeouts with bounded parallelism, and
// restarts a dead plugin with exponential backoff. It never trusts a plugin to behave: every
// fault — missing, untrusted, crashed, timed out, protocol violation, failed
// check, refused configuration — becomes a core.plugin_* finding in one place
// (fault.go), and the host goes on.
//
// # A turn, stage by stage
//
// A plugin's turn (turn.go turn) runs these stages in this order, each in
// one place, and turn.go lists its functions in the same order:
//
//  1. admit (turn.go admit): the plugin's spec is valid, the host open,
//     the attestation's deadline not passed.
//  2. trust (trust.go identify, verify; turn.go ensure, keep): the file's
//     metadata, refused when it is not a regular file owned by root or the
//     daemon's user and writable by no one else; its identity (device,
//     inode, size, mode, owner, mtime, ctime) compared with the one last
//     verified; then the file opened, checked again through the
//     descriptor, hashed through it (or the digest remembered for exactly
//     that identity reused, trust.go hash) and compared with the pin. A
//     resident plugin whose file is unchanged keeps running (keep); one
//     whose file changed is verified again, so a pinned plugin replaced
//     between two attestations is refused before its new binary runs and
//     an unpinned one that was upgraded restarts on its new binary.
//  3. spawn under the sandbox (turn.go launch, proc.go spawn): the host's
//     own executable in launcher mode (package launch) receives the
//     verified descriptor and the plugin's rules, confines itself
//     (Landlock, seccomp, no_new_privs) and executes the descriptor with
//     execveat, so the bytes that were hashed run, from no path anyone
//     could rename over, and the plugin's first instruction already runs
//     confined. go-plugin connects over a Unix socket in the plugin's own
//     0700 folder, no TLS, each side checking the other's process
//     (internal/peercred).
//  4. handshake (turn.go handshake): describe and configure.
//  5. measure (turn.go measure), in a Measure turn.
//  6. classify (turn.go finish, fault.go): a fault of any stage becomes the
//     result's one core.plugin_* finding; the policy's notices follow.
//
// A plugin's rules (Spec.Sandbox) come from the daemon, never from the
// plugin: the host adds only the plugin's socket folder. The host's private
// folder (Options.SocketDir, the unit's RuntimeDirectory) is in no
// plugin's rules.
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
// process. The host therefore forks plugins only from its forker goroutines
// (fork.go), each of which holds runtime.LockOSThread for the life of the
// host: Go never reuses or ends a locked thread while its goroutine runs, so
// a plugin's parent thread lives exactly as long as the host. A forker exits
// still locked when the host closes, which ends its thread. The forkers run
// only the start (fork and handshake); the rest of a turn runs on the
// workers, which are not locked, since a locked goroutine costs a thread
// switch at every block.
package pluginhost
