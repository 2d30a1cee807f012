package sandbox

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestRulesValidate(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		r       Rules
		wantErr string
	}{
		{Rules{}, ""},
		{Rules{ReadOnly: []string{"/etc/hosts"}, UnixSockets: []string{"@abstract", "/run/systemd/notify"}}, ""},
		{Rules{ReadOnly: []string{"etc/hosts"}}, "read_only[0]: path \"etc/hosts\" is not absolute"},
		{Rules{Exec: []string{"/usr/bin/", "/usr//bin"}}, "exec[0]: path \"/usr/bin/\" is not clean (want \"/usr/bin\")"},
		{Rules{Devices: []string{""}}, "devices[0]: empty path"},
		{Rules{ReadWrite: []string{"/tmp/a\x00b"}}, "read_write[0]: path \"/tmp/a\\x00b\" contains a NUL byte"},
		{Rules{UnixSockets: []string{"@"}}, "unix_sockets[0]: path \"@\" is not absolute"},
	} {
		err := tc.r.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.wantErr {
			t.Errorf("Test %d: got %q, want %q", i, got, tc.wantErr)
		}
	}
}

func TestRulesMergeAndCovers(t *testing.T) {
	t.Parallel()
	a := Rules{ReadOnly: []string{"/sys/firmware/efi/efivars", "/proc/cmdline"}, BindTCP: []uint16{8505}}
	b := Rules{ReadOnly: []string{"/proc/cmdline"}, Exec: []string{"/usr/bin/rpm-ostree"}, Devices: []string{"/dev/tpmrm0"}, BindTCP: []uint16{8505}}
	m := a.Merge(b)
	if want := []string{"/proc/cmdline", "/sys/firmware/efi/efivars"}; !slices.Equal(m.ReadOnly, want) {
		t.Errorf("ReadOnly %v, want %v", m.ReadOnly, want)
	}
	if !slices.Equal(m.BindTCP, []uint16{8505}) {
		t.Errorf("BindTCP %v", m.BindTCP)
	}
	if len(a.Exec) != 0 {
		t.Error("Merge changed its receiver")
	}
	for i, tc := range []struct {
		path string
		a    Access
		want bool
	}{
		{"/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c", Read, true},
		{"/sys/firmware/efi/efivarsX", Read, false},
		{"/sys/firmware/efi", Read, false},
		{"/proc/cmdline", Write, false},
		{"/dev/tpmrm0", Write, true},
		{"/usr/bin/rpm-ostree", Execute, true},
		{"/usr/bin/rpm-ostree", Read, true},
		{"/usr/bin/ostree", Execute, false},
	} {
		if got := m.Covers(tc.path, tc.a); got != tc.want {
			t.Errorf("Test %d: Covers(%s, %s) = %v, want %v", i, tc.path, tc.a, got, tc.want)
		}
	}
	if !(Rules{ReadOnly: []string{"/"}}).Covers("/etc/hosts", Read) {
		t.Error("/ does not cover /etc/hosts")
	}
}

func TestDaemonRules(t *testing.T) {
	t.Parallel()
	r := DaemonRules(DaemonPaths{
		PolicyFiles:  []string{"/etc/secure-ai/policy/attestation.yaml"},
		PluginDir:    "/usr/libexec/secure-ai/runtime-attestor/plugins/",
		Secrets:      []string{"/run/secure-ai/attestation-hmac-key"},
		AuditLogDir:  "/var/lib/secure-ai/logs",
		RuntimeDir:   "/run/secure-ai",
		SocketDir:    "/run/secure-ai/plugins",
		ListenPort:   8505,
		NotifySocket: "/run/systemd/notify",
		Self:         "/usr/libexec/secure-ai/runtime-attestor/runtime-attestor",
	}, Rules{ReadOnly: []string{"/proc/cmdline"}}, Rules{Exec: []string{"/usr/bin/rpm-ostree"}, Devices: []string{"/dev/tpmrm0"}})
	want := Rules{
		ReadOnly:  []string{"/etc/secure-ai/policy/attestation.yaml", "/proc/cmdline", "/run/secure-ai/attestation-hmac-key"},
		ReadWrite: []string{"/run/secure-ai", "/run/secure-ai/plugins", "/var/lib/secure-ai/logs"},
		// The daemon itself and the dedicated launcher beside it: the
		// plugin host starts each plugin through one of them.
		Exec: []string{"/usr/bin/rpm-ostree", "/usr/libexec/secure-ai/runtime-attestor/attestor-launcher",
			"/usr/libexec/secure-ai/runtime-attestor/plugins", "/usr/libexec/secure-ai/runtime-attestor/runtime-attestor"},
		Devices:     []string{"/dev/tpmrm0"},
		UnixSockets: []string{"/run/systemd/notify"},
		BindTCP:     []uint16{8505},
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name      string
		got, want []string
	}{
		{"read_only", r.ReadOnly, want.ReadOnly}, {"read_write", r.ReadWrite, want.ReadWrite}, {"exec", r.Exec, want.Exec},
		{"devices", r.Devices, want.Devices}, {"unix_sockets", r.UnixSockets, want.UnixSockets},
	} {
		if !slices.Equal(f.got, f.want) {
			t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
		}
	}
	if !slices.Equal(r.BindTCP, want.BindTCP) || len(r.ConnectTCP) != 0 {
		t.Errorf("tcp: bind %v connect %v", r.BindTCP, r.ConnectTCP)
	}
}

func TestParseLDConf(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		in       string
		dirs     []string
		includes []string
	}{
		{"", nil, nil},
		{"include /etc/ld.so.conf.d/*.conf\n", nil, []string{"/etc/ld.so.conf.d/*.conf"}},
		{"include conf.d/*.conf # relative\n", nil, []string{"/etc/conf.d/*.conf"}},
		{"# multiarch\n/usr/local/lib\n/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu\n", []string{"/usr/local/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}, nil},
		{"/opt/lib=libc6\nhwcap 0 nosegneg\nrelative/lib\n/opt//x/\n", []string{"/opt/lib", "/opt/x"}, nil},
	} {
		dirs, inc := parseLDConf([]byte(tc.in), "/etc")
		if !slices.Equal(dirs, tc.dirs) || !slices.Equal(inc, tc.includes) {
			t.Errorf("Test %d: got %v %v, want %v %v", i, dirs, inc, tc.dirs, tc.includes)
		}
	}
}

func FuzzParseLDConf(f *testing.F) {
	f.Add([]byte("include /etc/ld.so.conf.d/*.conf\n/usr/local/lib\n"))
	f.Add([]byte("/a:/b,/c\t/d=x\nhwcap 1 y\n#c\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dirs, inc := parseLDConf(data, "/etc")
		for _, d := range slices.Concat(dirs, inc) {
			if !filepath.IsAbs(d) || filepath.Clean(d) != d {
				t.Fatalf("parseLDConf returned %q, not absolute and clean", d)
			}
		}
	})
}

func FuzzScriptInterpreter(f *testing.F) {
	f.Add([]byte("#!/bin/sh\necho\n"))
	f.Add([]byte("#!  /usr/bin/env  python3 -u\n"))
	f.Add([]byte("#!"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		head := append([]byte("#!"), data...)
		got := scriptInterpreter(head)
		if strings.ContainsAny(got, " \t\n") {
			t.Fatalf("interpreter %q contains blanks", got)
		}
	})
}

// TestExecClosure: executing a dynamic binary needs its loader (execute)
// and its libraries (read); a script needs its interpreter's.
func TestExecClosure(t *testing.T) {
	t.Parallel()
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	trueBin, _ = filepath.EvalSymlinks(trueBin)
	ef, err := elf.Open(trueBin)
	if err != nil {
		t.Fatal(err)
	}
	var interp string
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	needed, _ := ef.DynString(elf.DT_NEEDED)
	ef.Close()
	if interp == "" || len(needed) == 0 {
		t.Skipf("%s is statically linked: nothing to resolve", trueBin)
	}

	dir := t.TempDir()
	script := filepath.Join(dir, "s.sh")
	if err := os.WriteFile(script, []byte("#!"+trueBin+" -x\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cl, err := execClosure([]string{script, filepath.Join(dir, "missing")}, systemLDConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	for _, want := range []string{script, trueBin, filepath.Clean(interp)} {
		if !slices.Contains(cl.execPaths(), want) {
			t.Errorf("exec %v lacks %s", cl.execPaths(), want)
		}
	}
	for _, lib := range needed {
		found := false
		for _, r := range cl.readPaths() {
			if filepath.Base(r) == lib {
				found = true
			}
		}
		if !found {
			t.Errorf("read %v lacks a file for %s", cl.readPaths(), lib)
		}
	}
	if !slices.Contains(cl.readPaths(), "/etc/ld.so.cache") {
		if _, err := os.Stat("/etc/ld.so.cache"); err == nil {
			t.Errorf("read %v lacks /etc/ld.so.cache", cl.readPaths())
		}
	}
	if !slices.Equal(cl.missing, []string{filepath.Join(dir, "missing")}) {
		t.Errorf("missing = %v", cl.missing)
	}
}

func TestProfiles(t *testing.T) {
	t.Parallel()
	plugin, pexec, daemon := ProfilePlugin.Syscalls(), ProfilePluginExec.Syscalls(), ProfileDaemon.Syscalls()
	if slices.Contains(plugin, "execve") || !slices.Contains(pexec, "execve") || !slices.Contains(daemon, "execve") {
		t.Error("execve must be only in the exec and daemon profiles")
	}
	// The launcher lowers its own priority under the daemon's filter; a
	// plugin must not renice anyone (PRIO_USER reaches the daemon).
	if slices.Contains(pexec, "setpriority") || !slices.Contains(daemon, "setpriority") {
		t.Error("setpriority must be only in the daemon profile")
	}
	for _, s := range plugin {
		if !slices.Contains(pexec, s) {
			t.Errorf("%s in plugin but not plugin-exec", s)
		}
	}
	for _, s := range pexec {
		if !slices.Contains(daemon, s) {
			t.Errorf("%s in plugin-exec but not daemon: a plugin could not run under the daemon's filter", s)
		}
	}
	for _, forbidden := range []string{"ptrace", "mount", "umount2", "unshare", "setns", "kexec_load", "init_module", "finit_module",
		"bpf", "perf_event_open", "process_vm_readv", "process_vm_writev", "pivot_root", "chroot", "reboot", "swapon",
		"keyctl", "add_key", "io_uring_setup", "userfaultfd", "setuid", "setgid", "fchown", "chown", "open_by_handle_at", "pidfd_getfd"} {
		if slices.Contains(daemon, forbidden) {
			t.Errorf("%s is allowed", forbidden)
		}
	}
	if Profile(0).Syscalls() != nil {
		t.Error("profile 0 has an allowlist")
	}
}

// TestPinnedPathMustNameItsFile: a granted path whose real path no longer
// names the file it leads to (here a link to a deleted file's descriptor
// link) is an error, not a missing path that is skipped: the daemon's
// check would judge another file than the rule grants. The process's own
// descriptor link itself (how the host grants the verified plugin file) is
// taken as the file it holds.
func TestPinnedPathMustNameItsFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "gone")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	own := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(own, link); err != nil {
		t.Fatal(err)
	}
	rules := func(p string) ([]string, error) {
		_, skipped, pinned, err := closureRules(Rules{ReadOnly: []string{p}}, closure{}, func(Rules) error { return nil })
		for _, f := range pinned {
			f.Close()
		}
		return skipped, err
	}
	if skipped, err := rules(link); err == nil || !strings.Contains(err.Error(), "the real path of "+link) || len(skipped) > 0 {
		t.Fatalf("a link to a deleted file: err %v, skipped %v; want an error naming its real path", err, skipped)
	}
	if skipped, err := rules(own); err != nil || len(skipped) > 0 {
		t.Fatalf("the process's own descriptor of a deleted file: err %v, skipped %v; want a rule", err, skipped)
	}
}
