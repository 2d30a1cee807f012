// Package attack is what the hostile test plugins try once started: read
// the daemon's secrets, write its audit log and run folder, reach another
// plugin's socket, the TPM, the network and other programs. Each attempt's outcome
// ("ok" or the error) goes back in the measurements, so the tests can show
// that every one of them was refused by the host's confinement.
package attack

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/sys/unix"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// Plan is the config a hostile plugin takes: what to try.
type Plan struct {
	Read    []string    `json:"read"`    // read a byte
	List    []string    `json:"list"`    // list a folder
	Append  []string    `json:"append"`  // append a byte
	Create  []string    `json:"create"`  // create a new file
	Rename  [][2]string `json:"rename"`  // rename from over to
	Symlink [][2]string `json:"symlink"` // make a symlink [target, link]
	Connect []string    `json:"connect"` // connect to a Unix socket, then an HTTP/2 preface
	TCP     []string    `json:"tcp"`     // connect to host:port
	UDP     []string    `json:"udp"`     // send a datagram to host:port
	// BindMPTCP binds an MPTCP socket to host:port (IPv4): a TCP grant
	// must not open the network to protocols Landlock does not confine.
	BindMPTCP []string `json:"bind_mptcp"`
	// FastOpen sends to host:port with MSG_FASTOPEN, which connects
	// without connect(2).
	FastOpen []string `json:"fastopen"`
	// Raw opens raw, SCTP, UDP and Unix datagram and seqpacket sockets.
	Raw  bool     `json:"raw"`
	Exec []string `json:"exec"` // run a program
	// ExtendPCR reaches a TPM, a swtpm socket or a device (a path under
	// /dev), and extends the verdict PCR (13), as a plugin would that
	// wants to break the daemon's verdict log.
	ExtendPCR []string `json:"extend_pcr"`
	// WriteFD writes to inherited descriptors (the launcher leaves the
	// plugin's grant open as fd 4, sealed) and, when that fails, grows
	// them with ftruncate.
	WriteFD []int `json:"write_fd"`
	// SignalParent sends SIGCONT (harmless, but a kill(2) all the same) to
	// the plugin's parent, the daemon when the plugin has no PID namespace.
	SignalParent bool `json:"signal_parent"`
	// Renice lowers the priority of every process of the plugin's user
	// (PRIO_USER: the daemon's too, across the PID namespace) and of its
	// parent, so that the plugin would win the unit's CPU over the API.
	Renice bool `json:"renice"`
	// Narrowing tries what only a process about to narrow itself needs:
	// prctl (clearing its parent-death signal, to outlive the daemon) and
	// execveat of a memory file it wrote (where Landlock does not check
	// execution). The memory file holds no program: an execveat the
	// filter lets through fails with "exec format error".
	Narrowing bool `json:"narrowing"`
}

// OK is the outcome of an attempt that worked.
const OK = "ok"

// Run tries everything in p and returns each attempt's outcome, keyed
// "<what> <path>".
func Run(ctx context.Context, p Plan) map[string]string {
	out := map[string]string{}
	try := func(key string, err error) {
		if err == nil {
			out[key] = OK
		} else {
			out[key] = err.Error()
		}
	}
	for _, f := range p.Read {
		try("read "+f, read(f))
	}
	for _, d := range p.List {
		_, err := os.ReadDir(d)
		try("list "+d, err)
	}
	for _, f := range p.Append {
		try("append "+f, write(f, os.O_WRONLY|os.O_APPEND))
	}
	for _, f := range p.Create {
		try("create "+f, write(f, os.O_WRONLY|os.O_CREATE|os.O_EXCL))
	}
	for _, r := range p.Rename {
		try("rename "+r[0]+" "+r[1], os.Rename(r[0], r[1]))
	}
	for _, s := range p.Symlink {
		try("symlink "+s[0]+" "+s[1], os.Symlink(s[0], s[1]))
	}
	for _, s := range p.Connect {
		try("connect "+s, connect(ctx, s))
	}
	for _, a := range p.TCP {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", a)
		if err == nil {
			c.Close()
		}
		try("tcp "+a, err)
	}
	for _, a := range p.UDP {
		try("udp "+a, udp(a))
	}
	for _, a := range p.FastOpen {
		try("fastopen "+a, fastOpen(a))
	}
	for _, a := range p.BindMPTCP {
		try("bind_mptcp "+a, bindMPTCP(a))
	}
	if p.Raw {
		try("socket raw", socketClose(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP))
		try("socket sctp", socketClose(syscall.AF_INET, syscall.SOCK_STREAM, 132))
		try("socket dgram", socketClose(syscall.AF_INET6, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0))
		try("socket unix dgram", socketClose(syscall.AF_UNIX, syscall.SOCK_DGRAM, 0))
		try("socket unix seqpacket", socketClose(syscall.AF_UNIX, syscall.SOCK_SEQPACKET, 0))
	}
	for _, x := range p.Exec {
		try("exec "+x, exec.CommandContext(ctx, x).Run())
	}
	if p.Renice {
		try("renice user", syscall.Setpriority(syscall.PRIO_USER, 0, 19))
		try("renice parent", syscall.Setpriority(syscall.PRIO_PROCESS, os.Getppid(), 19))
	}
	if p.Narrowing {
		try("prctl pdeathsig", unix.Prctl(unix.PR_SET_PDEATHSIG, 0, 0, 0, 0))
		try("execveat memfd", execMemfd())
	}
	for _, fd := range p.WriteFD {
		_, err := syscall.Write(fd, []byte("{}"))
		if err != nil {
			if terr := syscall.Ftruncate(fd, 1<<20); terr == nil {
				err = nil
			}
		}
		try("write fd "+strconv.Itoa(fd), err)
	}
	for _, t := range p.ExtendPCR {
		try("extend_pcr "+t, extendPCR(ctx, t))
	}
	if p.SignalParent {
		if pp := os.Getppid(); pp > 1 {
			try("signal the parent", syscall.Kill(pp, syscall.SIGCONT))
		}
	}
	return out
}

func read(f string) error {
	fh, err := os.Open(f)
	if err != nil {
		return err
	}
	defer fh.Close()
	_, err = fh.Read(make([]byte, 1))
	return err
}

func write(f string, flags int) error {
	fh, err := os.OpenFile(f, flags, 0o600)
	if err != nil {
		return err
	}
	_, err = fh.Write([]byte("x"))
	return errors.Join(err, fh.Close())
}

// connect reaches a Unix socket and, once connected, speaks what a
// go-plugin gRPC server expects: the HTTP/2 client preface and an empty
// SETTINGS frame. A server that takes the connection answers with its own
// SETTINGS frame; one whose peer check refused it closes the connection.
func connect(ctx context.Context, path string) error {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	preface := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)
	if _, err := c.Write(preface); err != nil {
		return errors.New("connected, refused: " + err.Error())
	}
	frame := make([]byte, 9)
	if _, err := io.ReadFull(c, frame); err != nil {
		return errors.New("connected, refused: " + err.Error())
	}
	if frame[3] != 4 {
		return fmt.Errorf("connected, answered frame type %d, not SETTINGS", frame[3])
	}
	return nil
}

// VerdictPCR is the PCR ExtendPCR extends: the daemon's default
// verdict_pcr.
const VerdictPCR = 13

// extendPCR opens the TPM at path (a device under /dev, else a swtpm
// Unix socket) and extends VerdictPCR's SHA-256 bank with empty password
// authorization, which a PCR without an auth value accepts.
func extendPCR(ctx context.Context, path string) error {
	var rw io.ReadWriteCloser
	if strings.HasPrefix(path, "/dev/") {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		rw = f
	} else {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		rw = c
	}
	defer rw.Close()
	d := sha256.Sum256([]byte("hostile plugin"))
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(VerdictPCR), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: d[:]}}},
	}.Execute(transport.FromReadWriter(rw))
	if err != nil {
		return errors.New("reached the TPM, extend refused: " + err.Error())
	}
	return nil
}

// ipprotoMPTCP is IPPROTO_MPTCP (linux/in.h).
const ipprotoMPTCP = 262

func bindMPTCP(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, ipprotoMPTCP)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return err
	}
	return syscall.Bind(fd, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
}

func fastOpen(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer syscall.Close(fd)
	return syscall.Sendto(fd, []byte("x"), 0x20000000, &syscall.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}) // MSG_FASTOPEN
}

func socketClose(family, typ, proto int) error {
	fd, err := syscall.Socket(family, typ, proto)
	if err != nil {
		return err
	}
	return syscall.Close(fd)
}

func udp(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte("x"))
	return err
}

// Forged are the bundle fields a hostile plugin claims, which only the
// built-in plugins that own them may fill.
func Forged() map[string]any {
	return map[string]any{"tpm_available": true, "tpm_quote_verified": true, "kernel_lockdown": "confidentiality"}
}

// Check is a hostile check: it takes a Plan as its configuration and, at
// every Measure, runs it and answers the outcomes under "attempts", beside
// forged bundle fields.
type Check struct {
	Name string
	plan Plan
}

// Describe names the check.
func (c *Check) Describe() sdk.Description {
	return sdk.Description{Name: c.Name, Version: "6.6.6", Summary: "hostile test plugin",
		Fills:    []string{"tpm_available", "tpm_quote_verified"},
		Findings: []sdk.FindingSpec{{Code: c.Name + ".ok", DefaultSeverity: sdk.SeverityInfo, Description: "attacks tried"}}}
}

// Configure takes the plan.
func (c *Check) Configure(_ context.Context, cfg sdk.Config) error {
	return cfg.Decode(&c.plan)
}

// Measure runs the plan.
func (c *Check) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	r := sdk.NewResult()
	for k, v := range Forged() {
		r.Set(k, v)
	}
	r.Set("attempts", Run(ctx, c.plan))
	r.Add(sdk.Finding{Code: c.Name + ".ok", Severity: sdk.SeverityInfo, Message: "attacks tried", Subject: c.Name})
	return r, nil
}

// execMemfd executes a memory file holding a few bytes that are no
// program.
func execMemfd() error {
	fd, err := unix.MemfdCreate("not-a-program", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd)
	if _, err := unix.Write(fd, []byte("\x7fELF, or not")); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	argv, _ := syscall.SlicePtrFromStrings([]string{"x"})
	empty, _ := unix.BytePtrFromString("")
	envp := []*byte{nil}
	_, _, errno := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(fd), uintptr(unsafe.Pointer(empty)),
		uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execveat: %w", errno)
}
