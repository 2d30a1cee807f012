package deploy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/deploy"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

const (
	unitName   = "secure-ai-runtime-attestor.service"
	socketName = "secure-ai-runtime-attestor.socket"
)

// builtins are the built-in plugins (the registry).
var builtins = builtin.Names()

// maxExposure is the highest `systemd-analyze security` score the unit may
// have.
const maxExposure = 2.0

func readUnit(t *testing.T) deploy.Unit {
	t.Helper()
	data, err := os.ReadFile(unitName)
	if err != nil {
		t.Fatal(err)
	}
	u, err := deploy.ParseUnit(data)
	if err != nil {
		t.Fatalf("parse %s: %v", unitName, err)
	}
	return u
}

// fakeBuild makes stand-ins for `make build` output: executables that exit 0.
func fakeBuild(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	if err := os.Mkdir(filepath.Join(bin, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"runtime-attestor", "attestor-launcher", "attestctl"}
	for _, p := range builtins {
		names = append(names, filepath.Join("plugins", "attestor-check-"+p))
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(bin, n), []byte("#!/bin/sh\necho "+filepath.Base(n)+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// policySource is the policy install.sh installs: the production example
// once it exists, else a stand-in.
func policySource(t *testing.T) string {
	t.Helper()
	p := filepath.Join(testbin.Root(t), "policy", "examples", "production.yaml")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Logf("%s not there yet: installing testdata/attestation.yaml", p)
	abs, err := filepath.Abs(filepath.Join("testdata", "attestation.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// install runs scripts/install.sh DESTDIR PREFIX with fake built files.
func install(t *testing.T, bin, policy, destdir, prefix string) string {
	t.Helper()
	script := filepath.Join(testbin.Root(t), "scripts", "install.sh")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, destdir, prefix)
	cmd.Env = append(os.Environ(), "BIN_DIR="+bin, "POLICY_SRC="+policy)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("install.sh %s %s: %v\n%s", destdir, prefix, err, out)
	}
	return string(out)
}

func wantFile(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("missing %s: %v", path, err)
		return
	}
	if fi.Mode() != mode {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
	}
}

func TestInstallLayout(t *testing.T) {
	t.Parallel()
	bin, policy := fakeBuild(t), policySource(t)
	dest := t.TempDir()
	install(t, bin, policy, dest, "/usr")
	lib := filepath.Join(dest, "usr/libexec/secure-ai/runtime-attestor")
	wantFile(t, lib, os.ModeDir|0o755)
	wantFile(t, filepath.Join(lib, "runtime-attestor"), 0o755)
	wantFile(t, filepath.Join(lib, "attestor-launcher"), 0o755)
	wantFile(t, filepath.Join(lib, "runtime-attestor-keygen"), 0o755)
	wantFile(t, filepath.Join(lib, "plugins"), os.ModeDir|0o755)
	for _, p := range builtins {
		wantFile(t, filepath.Join(lib, "plugins", "attestor-check-"+p), 0o755)
	}
	wantFile(t, filepath.Join(dest, "usr/bin/attestctl"), 0o755)
	wantFile(t, filepath.Join(dest, "usr/lib/systemd/system", unitName), 0o644)
	wantFile(t, filepath.Join(dest, "usr/lib/sysusers.d/secure-ai-runtime-attestor.conf"), 0o644)
	wantFile(t, filepath.Join(dest, "usr/share/doc/runtime-attestor/gate-on-attestor.conf"), 0o644)
	wantFile(t, filepath.Join(dest, "usr/share/doc/runtime-attestor/sysctl-cfs-bandwidth-slice.conf"), 0o644)
	pol := filepath.Join(dest, "etc/secure-ai/policy/attestation.yaml")
	wantFile(t, pol, 0o644)
	if os.Geteuid() == 0 {
		for _, p := range []string{filepath.Join(lib, "plugins"), filepath.Join(lib, "plugins", "attestor-check-tpm")} {
			if uid, gid := owner(t, p); uid != 0 || gid != 0 {
				t.Errorf("%s owned by %d:%d, want root", p, uid, gid)
			}
		}
	}
	// The installed unit is the repository's.
	src, _ := os.ReadFile(unitName)
	got, _ := os.ReadFile(filepath.Join(dest, "usr/lib/systemd/system", unitName))
	if !bytes.Equal(src, got) {
		t.Error("installed unit differs from deploy/" + unitName + " with PREFIX=/usr")
	}

	// A second install keeps the operator's policy.
	edited := []byte("# edited by the operator\nrequire_tpm: true\n")
	if err := os.WriteFile(pol, edited, 0o640); err != nil {
		t.Fatal(err)
	}
	out := install(t, bin, policy, dest, "/usr")
	if data, _ := os.ReadFile(pol); !bytes.Equal(data, edited) {
		t.Errorf("second install replaced the existing policy: %q", data)
	}
	if !strings.Contains(out, "keeping existing") {
		t.Errorf("second install did not say it kept the policy:\n%s", out)
	}
}

func owner(t *testing.T, path string) (int, int) {
	t.Helper()
	out, err := exec.Command("stat", "-c", "%u %g", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var uid, gid int
	if _, err := fmt.Sscan(string(out), &uid, &gid); err != nil {
		t.Fatal(err)
	}
	return uid, gid
}

func TestInstallOtherPrefix(t *testing.T) {
	t.Parallel()
	dest := t.TempDir()
	out := install(t, fakeBuild(t), policySource(t), dest, "/usr/local")
	unit, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system", unitName))
	if err != nil {
		t.Fatal(err)
	}
	u, err := deploy.ParseUnit(unit)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Get("Service", "ExecStart"); !slices.Equal(got, []string{"/usr/local/libexec/secure-ai/runtime-attestor/runtime-attestor"}) {
		t.Errorf("ExecStart %q does not follow PREFIX", got)
	}
	wantFile(t, filepath.Join(dest, "usr/local/libexec/secure-ai/runtime-attestor/runtime-attestor"), 0o755)
	wantFile(t, filepath.Join(dest, "usr/local/bin/attestctl"), 0o755)
	helper := filepath.Join(dest, "usr/local/libexec/secure-ai/runtime-attestor/runtime-attestor-keygen")
	wantFile(t, helper, 0o755)
	if h, err := os.ReadFile(helper); err != nil || !strings.Contains(string(h), `"${ATTESTCTL:-/usr/local/bin/attestctl}" keygen --if-missing`) {
		t.Errorf("the keygen helper does not run PREFIX's attestctl: %v\n%s", err, h)
	}
	if !strings.Contains(out, "plugin_dir") {
		t.Errorf("install with PREFIX=/usr/local did not tell to set plugin_dir:\n%s", out)
	}
}

func TestInstallRefusesBadArguments(t *testing.T) {
	t.Parallel()
	script := filepath.Join(testbin.Root(t), "scripts", "install.sh")
	for i, args := range [][]string{{}, {"relative/dir", "/usr"}, {t.TempDir(), "usr"}, {t.TempDir(), ""}} {
		cmd := exec.Command(script, args...)
		cmd.Env = append(os.Environ(), "BIN_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Errorf("Test %d: install.sh %q: got %v, want a non-zero exit\n%s", i, args, err, out)
		}
	}
	// Nothing built: a clear error.
	cmd := exec.Command(script, t.TempDir(), "/usr")
	cmd.Env = append(os.Environ(), "BIN_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not built") {
		t.Errorf("install.sh without a build: %v\n%s", err, out)
	}
}

// TestSocketUnit: the socket unit holds the API port 8505 on the loopback
// (and the Unix socket) for the service.
func TestSocketUnit(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(socketName)
	if err != nil {
		t.Fatal(err)
	}
	u, err := deploy.ParseUnit(data)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1:8505", "/run/secure-ai-attestor/attestor.sock"}
	if got := u.Get("Socket", "ListenStream"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("ListenStream = %q, want %q", got, want)
	}
	if got := u.Get("Socket", "Service"); len(got) != 1 || got[0] != unitName {
		t.Errorf("Service = %q, want %s", got, unitName)
	}
}

// TestUnitSettings pins the unit's hardening settings, so that a change
// to the unit that drops one fails here and not only in the score.
func TestUnitSettings(t *testing.T) {
	t.Parallel()
	u := readUnit(t)
	for i, tc := range []struct {
		section, key string
		want         []string
	}{
		{"Unit", "Before", []string{"secure-ai-policy-engine.service"}},
		{"Unit", "Requires", []string{socketName}},
		{"Service", "Type", []string{"notify"}},
		{"Service", "NotifyAccess", []string{"main"}},
		{"Service", "ExecStart", []string{"/usr/libexec/secure-ai/runtime-attestor/runtime-attestor"}},
		{"Service", "ExecStartPre", []string{"/usr/libexec/secure-ai/runtime-attestor/runtime-attestor-keygen"}},
		{"Service", "WatchdogSec", []string{"1min"}},
		{"Service", "Restart", []string{"on-failure"}},
		{"Service", "DynamicUser", []string{"yes"}},
		{"Service", "ProtectSystem", []string{"strict"}},
		{"Service", "ProtectHome", []string{"yes"}},
		{"Service", "PrivateTmp", []string{"yes"}},
		{"Service", "MemoryDenyWriteExecute", []string{"yes"}},
		{"Service", "NoNewPrivileges", []string{"yes"}},
		{"Service", "CapabilityBoundingSet", []string{""}},
		{"Service", "AmbientCapabilities", []string{""}},
		{"Service", "ProtectKernelTunables", []string{"yes"}},
		{"Service", "ProtectKernelModules", []string{"yes"}},
		{"Service", "ProtectKernelLogs", []string{"yes"}},
		{"Service", "RestrictAddressFamilies", []string{"AF_UNIX AF_INET AF_INET6"}},
		{"Service", "RestrictNamespaces", []string{"yes"}},
		{"Service", "IPAddressDeny", []string{"any"}},
		{"Service", "IPAddressAllow", []string{"localhost"}},
		{"Service", "DevicePolicy", []string{"closed"}},
		{"Service", "DeviceAllow", []string{"/dev/tpmrm0 rw"}},
		{"Service", "SystemCallErrorNumber", []string{"EPERM"}},
		{"Service", "MemoryMax", []string{"128M"}},
		{"Service", "CPUQuota", []string{"10%"}},
		{"Service", "TasksMax", []string{"32"}},
		{"Service", "LimitCORE", []string{"0"}},
		{"Service", "StateDirectory", []string{"secure-ai/logs secure-ai/runtime-attestor secure-ai/identity"}},
		{"Service", "RuntimeDirectory", []string{"secure-ai"}},
	} {
		if got := u.Get(tc.section, tc.key); !slices.Equal(got, tc.want) {
			t.Errorf("Test %d: [%s] %s = %q, want %q", i, tc.section, tc.key, got, tc.want)
		}
	}
}

// TestUnitSyscallFilterIsDaemonProfile: the unit's SystemCallFilter= is
// exactly the allowlist the daemon installs in-process.
func TestUnitSyscallFilterIsDaemonProfile(t *testing.T) {
	t.Parallel()
	var got []string
	for _, v := range readUnit(t).Get("Service", "SystemCallFilter") {
		got = append(got, strings.Fields(v)...)
	}
	slices.Sort(got)
	want := sandbox.ProfileDaemon.Syscalls()
	if !slices.Equal(got, want) {
		extra, missing := diff(got, want), diff(want, got)
		t.Errorf("SystemCallFilter= differs from sandbox.ProfileDaemon: only in the unit %v, only in the profile %v", extra, missing)
	}
}

func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd; make deps installs it): the unit cannot be checked")
	}
	return p
}

// systemRoot installs into a temporary root and adds what systemd-analyze
// needs to load the unit there: the system's own units (sysinit.target,
// …), /bin/kill for ExecReload=, and a downstream unit carrying the example
// gate drop-in.
func systemRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	install(t, fakeBuild(t), policySource(t), root, "/usr")
	units := filepath.Join(root, "usr/lib/systemd/system")
	if out, err := exec.Command("cp", "-a", "-n", "/usr/lib/systemd/system/.", units+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy the system's units: %v\n%s", err, out)
	}
	for _, f := range []struct {
		path, data string
		mode       os.FileMode
	}{
		{"usr/bin/kill", "#!/bin/sh\n", 0o755},
		{"usr/libexec/secure-ai/policy-engine", "#!/bin/sh\n", 0o755},
		{"usr/lib/systemd/system/secure-ai-policy-engine.service", "[Unit]\nDescription=policy engine stand-in\n\n[Service]\nExecStart=/usr/libexec/secure-ai/policy-engine\n", 0o644},
	} {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	dropin := filepath.Join(root, "etc/systemd/system/secure-ai-policy-engine.service.d")
	if err := os.MkdirAll(dropin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "usr/share/doc/runtime-attestor/gate-on-attestor.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dropin, "gate-on-attestor.conf"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestUnitVerifies(t *testing.T) {
	t.Parallel()
	sa := systemdAnalyze(t)
	root := systemRoot(t)
	for _, unit := range []string{unitName, socketName, "secure-ai-policy-engine.service"} {
		out, err := exec.Command(sa, "verify", "--man=false", "--root="+root, unit).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, out)
		}
	}
	// The check can fail: a unit with a mistake is reported.
	bad := filepath.Join(root, "usr/lib/systemd/system", unitName)
	data, _ := os.ReadFile(bad)
	if err := os.WriteFile(bad, append(data, []byte("ProtectSytem=strict\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(sa, "verify", "--man=false", "--root="+root, unitName).CombinedOutput()
	if !strings.Contains(string(out), "ProtectSytem") {
		t.Errorf("systemd-analyze verify did not report a misspelt key:\n%s", out)
	}
}

func TestUnitExposure(t *testing.T) {
	t.Parallel()
	sa := systemdAnalyze(t)
	root := systemRoot(t)
	out, _ := exec.Command(sa, "security", "--offline=true", "--no-pager", "--root="+root, unitName).CombinedOutput()
	unit, score, err := deploy.ParseExposure(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if unit != unitName {
		t.Fatalf("exposure reported for %s, want %s", unit, unitName)
	}
	t.Logf("systemd-analyze security --offline=true: overall exposure level %.1f (limit %.1f)", score, maxExposure)
	if score > maxExposure {
		t.Errorf("exposure %.1f above %.1f:\n%s", score, maxExposure, out)
	}
}

// TestKeygen runs the ExecStartPre helper as systemd would: the per-boot
// key and token in the runtime directory, the signing key (with the real
// attestctl) in the identity state folder, made 0700. A second start keeps
// everything; a signing.key.pub left without its key stops the start and
// no new key is made.
func TestKeygen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	state := t.TempDir()
	logs, id := filepath.Join(state, "secure-ai", "logs"), filepath.Join(state, "secure-ai", "identity")
	for _, d := range []string{logs, id} {
		if err := os.MkdirAll(d, 0o750); err != nil { // as StateDirectoryMode= made it before
			t.Fatal(err)
		}
	}
	attestctl := testbin.Build(t, "./cmd/attestctl", "attestctl")
	run := func() (string, error) {
		cmd := exec.Command("./runtime-attestor-keygen")
		cmd.Env = append(os.Environ(), "RUNTIME_DIRECTORY="+dir, "STATE_DIRECTORY="+logs+":"+id, "ATTESTCTL="+attestctl)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(); err != nil {
		t.Fatalf("keygen: %v\n%s", err, out)
	}
	files := map[string][]byte{}
	for _, name := range []string{"attestation-hmac-key", "attestor-api-token"} {
		p := filepath.Join(dir, name)
		wantFile(t, p, 0o600)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 64 || strings.Trim(string(data), "0123456789abcdef") != "" {
			t.Errorf("%s: %q is not 64 lowercase hex characters", name, data)
		}
		files[name] = data
	}
	if bytes.Equal(files["attestation-hmac-key"], files["attestor-api-token"]) {
		t.Error("key and token are the same")
	}
	key := filepath.Join(id, "signing.key")
	wantFile(t, key, 0o600)
	wantFile(t, key+".pub", 0o644)
	if fi, err := os.Stat(id); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("identity folder: %v %v, want mode 0700", fi.Mode().Perm(), err)
	}
	s, err := identity.Load(key)
	if err != nil || s.Alg() != identity.AlgEd25519 {
		t.Fatalf("signing key: %v (%v)", err, s)
	}
	files["signing.key"], _ = os.ReadFile(key)
	// A second start keeps all three.
	out, err := run()
	if err != nil || strings.Contains(out, "created") || !strings.Contains(out, "kept "+key) || !strings.Contains(out, s.KeyID()) {
		t.Errorf("second run: %v\n%s", err, out)
	}
	for name, want := range files {
		p := filepath.Join(dir, name)
		if name == "signing.key" {
			p = key
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
			t.Errorf("%s changed on the second run", name)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp.*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// The key went, its public key stayed: the start stops.
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err == nil || !strings.Contains(out, "identity verifiers pinned is gone") {
		t.Errorf("run with an orphaned signing.key.pub: %v\n%s", err, out)
	}
	if _, err := os.Stat(key); err == nil {
		t.Error("a new signing key was made beside the old public key")
	}
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(daemonEnv); spec != "" {
		os.Exit(runSandboxedDaemon(spec))
	}
	os.Exit(testbin.Main(m))
}

// TestInstallOnlyBuiltinPlugins: whatever else sits in bin/plugins/ (a test
// plugin, a vendor's build, an editor's backup) is not installed, and the
// script names it.
func TestInstallOnlyBuiltinPlugins(t *testing.T) {
	t.Parallel()
	bin, policy := fakeBuild(t), policySource(t)
	extra := []string{"attestor-check-echo", "attestor-check-tpm.orig", "notes.txt"}
	for _, n := range extra {
		if err := os.WriteFile(filepath.Join(bin, "plugins", n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dest := t.TempDir()
	out := install(t, bin, policy, dest, "/usr")
	dir := filepath.Join(dest, "usr/libexec/secure-ai/runtime-attestor/plugins")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if len(got) != len(builtins) {
		t.Errorf("installed plugins %v, want only the %d built-ins", got, len(builtins))
	}
	for _, n := range extra {
		if _, err := os.Lstat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s was installed", n)
		}
		if !strings.Contains(out, filepath.Join(bin, "plugins", n)+": not a built-in plugin") {
			t.Errorf("install.sh does not name %s:\n%s", n, out)
		}
	}
}
