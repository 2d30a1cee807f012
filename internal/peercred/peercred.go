// Package peercred authenticates the two ends of the transport between
// the plugin host and a plugin: gRPC over the plugin's go-plugin Unix
// socket, without TLS, in which each side asks the kernel who is at the
// other end (SO_PEERCRED, and on kernels with pidfs SO_PEERPIDFD) and
// refuses anyone but its own peer.
//
// CheckHost is the host's check: the socket must lie directly inside the
// 0700 folder the host made for this plugin (owned by the host's user),
// and the process listening on it must be the plugin process the host
// started, under the host's user. PluginCheck is the plugin's: the
// process connecting must be the daemon that started it. The daemon is known by the pidfs inode of its
// process, passed in DaemonEnv (an identity that holds across PID
// namespaces, where the daemon and every other process outside the
// plugin's namespace read as pid 0); without pidfs, by the plugin's
// parent pid.
//
// Package grpccreds makes gRPC transport credentials of both checks (the
// daemon dials with them); a plugin's server calls PluginCheck itself and
// this package links no gRPC. Both checks are a few system calls, against the P-521 key generation and
// two TLS handshakes go-plugin's AutoMTLS costs on every start
// (docs/architecture.md, "The plugin transport").
package peercred

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// DaemonEnv names the variable in which the host tells a plugin the pidfs
// inode of the daemon process, the only peer the plugin accepts. It is
// absent where the kernel has no pidfs (before Linux 6.9).
const DaemonEnv = "RUNTIME_ATTESTOR_DAEMON_PIDFS"

// Cred is what the kernel says of a Unix socket's peer.
type Cred struct {
	PID int
	UID uint32
	// PidfsIno is the pidfs inode of the peer process (unique for the
	// boot), 0 where the kernel cannot tell it.
	PidfsIno uint64
}

// PeerOf returns what the kernel says of the process at the other end of
// conn, which must be a Unix stream socket.
func PeerOf(conn net.Conn) (Cred, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Cred{}, fmt.Errorf("the connection is a %T, not a Unix socket: only the plugin's own Unix socket is accepted", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Cred{}, fmt.Errorf("the socket's descriptor: %w", err)
	}
	var c Cred
	var serr error
	err = raw.Control(func(fd uintptr) {
		uc, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			serr = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		c.PID, c.UID = int(uc.Pid), uc.Uid
		c.PidfsIno = peerPidfsIno(int(fd))
	})
	if err == nil {
		err = serr
	}
	return c, err
}

// peerPidfsIno returns the pidfs inode of fd's peer, 0 when the kernel
// has no SO_PEERPIDFD or no pidfs.
func peerPidfsIno(fd int) uint64 {
	pfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	if err != nil {
		return 0
	}
	defer unix.Close(pfd)
	return pidfsIno(pfd)
}

// pidfsIno returns the inode of the pidfd pfd when it lives on pidfs, 0
// otherwise (an anonymous inode, which every pidfd shares).
func pidfsIno(pfd int) uint64 {
	var fs unix.Statfs_t
	if unix.Fstatfs(pfd, &fs) != nil || fs.Type != unix.PID_FS_MAGIC {
		return 0
	}
	var st unix.Stat_t
	if unix.Fstat(pfd, &st) != nil {
		return 0
	}
	return st.Ino
}

// SelfPidfsIno returns the pidfs inode of the calling process, 0 where the
// kernel has no pidfs.
func SelfPidfsIno() uint64 { return PidfsOfPid(os.Getpid()) }

// DaemonEnvEntry returns the environment entry naming the calling process
// as the daemon of the plugins it starts, "" where the kernel has no pidfs
// (the plugin then checks its parent pid).
func DaemonEnvEntry() string {
	ino := SelfPidfsIno()
	if ino == 0 {
		return ""
	}
	return DaemonEnv + "=" + strconv.FormatUint(ino, 10)
}

// checkDir checks that dir is a folder (not a link) of mode 0700 owned by
// the calling process's effective user.
func checkDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("the plugin's socket folder %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("the plugin's socket folder %s is not a folder", dir)
	}
	if perm := st.Mode & 0o7777; perm != 0o700 {
		return fmt.Errorf("the plugin's socket folder %s has mode %#o, not 0700: another user could reach the socket; remove it and restart", dir, perm)
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid {
		return fmt.Errorf("the plugin's socket folder %s is owned by uid %d, not the daemon's uid %d", dir, st.Uid, uid)
	}
	return nil
}

// inDir checks that the socket path addr lies directly inside dir.
func inDir(addr, dir string) error {
	if !filepath.IsAbs(addr) || filepath.Dir(filepath.Clean(addr)) != filepath.Clean(dir) {
		return fmt.Errorf("the plugin announced the socket %q, which is not in its own folder %s: refusing to talk to it", addr, dir)
	}
	return nil
}

// PidfsOfPid returns the pidfs inode of process pid, 0 where the kernel
// has no pidfs.
func PidfsOfPid(pid int) uint64 {
	pfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(pfd)
	return pidfsIno(pfd)
}
