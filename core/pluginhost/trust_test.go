package pluginhost

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// markerStarts returns the pids the marker plugin named name recorded:
// one per process start, written before the handshake.
func markerStarts(t *testing.T, dir, name string) []string {
	t.Helper()
	return lines(t, filepath.Join(dir, "started-"+name))
}

func TestPinMatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := install(t, dir, "marker", "pinned")
	sum := sha256File(t, path)
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "pinned", Enabled: true, SHA256: sum}}})
	hs.start()
	rs := hs.measure()
	wantGood(t, rs, "pinned")
	if rs["pinned"].SHA256 != sum || rs["pinned"].Path != path {
		t.Errorf("result sha256 %s path %s, want %s %s", rs["pinned"].SHA256, rs["pinned"].Path, sum, path)
	}
	if n := len(markerStarts(t, dir, "pinned")); n != 1 {
		t.Errorf("the pinned plugin started %d times, want once", n)
	}
}

func TestPinMismatchNeverStarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "marker", "pinned")
	wrong := strings.Repeat("ab", 32)
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "pinned", Enabled: true, SHA256: wrong}}})
	hs.start()
	for range 2 {
		wantFault(t, hs.measure(), "pinned", FaultUntrusted, CodeUntrusted, "not the pinned "+wrong)
	}
	if got := markerStarts(t, dir, "pinned"); got != nil {
		t.Errorf("a plugin whose pin does not match ran: pids %v", got)
	}
	if pids := hs.host.PIDs(); pids != nil {
		t.Errorf("live plugins %v", pids)
	}
}

// TestPinnedBinaryReplaced: the binary of a pinned plugin is replaced
// between two attestations, renamed over while it runs, or rewritten in
// place after its process died. The second attestation refuses it before
// the new binary runs, and stops the old process.
func TestPinnedBinaryReplaced(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"rename", "in place"} {
		t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := install(t, dir, "marker", "pinned")
			sum := sha256File(t, path)
			hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "pinned", Enabled: true, SHA256: sum}}})
			hs.start()
			wantGood(t, hs.measure(), "pinned")
			old := procOf(t, hs.pidOf("pinned"))
			if how == "in place" {
				if err := syscallKill(old.pid); err != nil {
					t.Fatal(err)
				}
				waitGone(t, "the killed plugin", old)
			}
			// Still a working marker plugin, with another hash.
			replaceBinary(t, path, how == "rename")
			wantFault(t, hs.measure(), "pinned", FaultUntrusted, CodeUntrusted, "not the pinned "+sum)
			waitGone(t, "the replaced plugin's old process", old)
			if n := len(markerStarts(t, dir, "pinned")); n != 1 {
				t.Errorf("the plugin started %d times, want once: the replaced binary ran", n)
			}
			hs.onlyLive()
		})
	}
}

// replaceBinary appends bytes to an executable (still runnable, another
// hash), by renaming a new file over it or by writing in place.
func replaceBinary(t *testing.T, path string, rename bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if rename {
		b = append(b, []byte("\x00tampered")...)
		tmp := path + ".new"
		if err := os.WriteFile(tmp, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		return
	}
	// In place (the binary must not be running: ETXTBSY). A killed
	// process's leader reads as a zombie while its other threads are
	// still exiting with the executable mapped, so ETXTBSY is retried.
	var f *os.File
	err = errors.New("not tried")
	for deadline := time.Now().Add(10 * time.Second); err != nil; {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil && (!errors.Is(err, syscall.ETXTBSY) || time.Now().After(deadline)) {
			t.Fatalf("open for writing: %v", err)
		}
		if err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	defer f.Close()
	if _, err := f.Write([]byte("\x00tampered")); err != nil {
		t.Fatalf("write in place: %v", err)
	}
}

// TestUnpinnedBinaryUpgraded: an unpinned plugin whose binary changed (and
// is still trusted) is restarted on the new binary.
func TestUnpinnedBinaryUpgraded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := install(t, dir, "marker", "plain")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "plain", Enabled: true}}})
	hs.start()
	first := hs.measure()["plain"]
	old := procOf(t, hs.pidOf("plain"))
	replaceBinary(t, path, true)
	rs := hs.measure()
	wantGood(t, rs, "plain")
	if rs["plain"].SHA256 == first.SHA256 || rs["plain"].SHA256 != sha256File(t, path) {
		t.Errorf("sha256 %s after the upgrade, want the new binary's %s", rs["plain"].SHA256, sha256File(t, path))
	}
	waitGone(t, "the old binary's process", old)
	if n := len(markerStarts(t, dir, "plain")); n != 2 {
		t.Errorf("the plugin started %d times, want twice", n)
	}
	// Touching the file (same content) does not restart it.
	now := hs.pidOf("plain")
	if err := os.Chmod(path, 0o750); err != nil {
		t.Fatal(err)
	}
	wantGood(t, hs.measure(), "plain")
	if hs.pidOf("plain") != now {
		t.Error("a chmod restarted the plugin")
	}
}

// TestRefusedFiles: what the host refuses to execute, and why.
func TestRefusedFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, path string)
		fault string
		code  string
		msg   string
	}{
		{"group_writable", chmod(0o775), FaultUntrusted, CodeUntrusted, "group- or world-writable (mode 0775)"},
		{"world_writable", chmod(0o757), FaultUntrusted, CodeUntrusted, "group- or world-writable (mode 0757)"},
		{"other_owner", func(t *testing.T, _, path string) {
			if err := os.Chown(path, 4242, 4242); err != nil {
				t.Skipf("chown: %v", err)
			}
		}, FaultUntrusted, CodeUntrusted, "owned by uid 4242"},
		{"symlink_out", func(t *testing.T, dir, path string) {
			outside := filepath.Join(t.TempDir(), "elsewhere")
			mustRename(t, path, outside)
			mustSymlink(t, outside, path)
		}, FaultUntrusted, CodeUntrusted, "leads out of the plugin directory"},
		{"relative_symlink_out", func(t *testing.T, dir, path string) {
			outside := filepath.Join(filepath.Dir(dir), "escaped-"+filepath.Base(dir))
			mustRename(t, path, outside)
			mustSymlink(t, "../"+filepath.Base(outside), path)
			t.Cleanup(func() { _ = os.Remove(outside) })
		}, FaultUntrusted, CodeUntrusted, "leads out of the plugin directory"},
		{"directory", func(t *testing.T, _, path string) {
			mustRemove(t, path)
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, FaultUntrusted, CodeUntrusted, "not a regular file (a directory)"},
		{"fifo", func(t *testing.T, _, path string) {
			mustRemove(t, path)
			if err := syscall.Mkfifo(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, FaultUntrusted, CodeUntrusted, "not a regular file (a named pipe)"},
		{"not_executable", chmod(0o644), FaultMissing, CodeMissing, "not executable (mode 0644)"},
		{"missing", func(t *testing.T, _, path string) { mustRemove(t, path) }, FaultMissing, CodeMissing, "no executable"},
		{"dangling_symlink", func(t *testing.T, _, path string) {
			mustRemove(t, path)
			mustSymlink(t, "nowhere", path)
		}, FaultMissing, CodeMissing, "leads nowhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			install(t, dir, "good", "good")
			path := install(t, dir, "marker", "target")
			tc.setup(t, dir, path)
			hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "good", Enabled: true}, {Name: "target", Enabled: true}}})
			hs.start()
			rs := hs.measure()
			wantGood(t, rs, "good")
			wantFault(t, rs, "target", tc.fault, tc.code, tc.msg)
			if got := markerStarts(t, dir, "target"); got != nil {
				t.Errorf("the refused plugin ran: %v", got)
			}
			hs.onlyLive()
		})
	}
}

func chmod(mode os.FileMode) func(*testing.T, string, string) {
	return func(t *testing.T, _, path string) {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestSymlinkWithinDir: a symlink that resolves inside the plugin
// directory is allowed, and the plugin runs under the link's name.
func TestSymlinkWithinDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "versions"), 0o755); err != nil {
		t.Fatal(err)
	}
	real := install(t, filepath.Join(dir, "versions"), "good", FilePrefix+"linked")
	mustSymlink(t, "versions/"+filepath.Base(real), filepath.Join(dir, FilePrefix+"linked"))
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "linked", Enabled: true, SHA256: sha256File(t, real)}}})
	hs.start()
	wantGood(t, hs.measure(), "linked")
}

func TestDisabledNotStarted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	install(t, dir, "marker", "off")
	hs := newHarness(t, Options{Dir: dir, RunUnlisted: true, Plugins: []Spec{{Name: "good", Enabled: true}, {Name: "off", Enabled: false}}})
	hs.start()
	rs := hs.measure()
	if _, ok := rs["off"]; ok || len(rs) != 1 {
		t.Errorf("results %v, want good only", keys(rs))
	}
	if got := markerStarts(t, dir, "off"); got != nil {
		t.Errorf("a disabled plugin ran: %v", got)
	}
}

// TestUnlisted: a third-party plugin the policy does not name runs with
// RunUnlisted (config {}, nothing granted), even one dropped in after
// Start; without it, it is one core.plugin_unlisted info finding and never
// runs. A file that is not a plugin is ignored.
func TestUnlisted(t *testing.T) {
	t.Parallel()
	for _, run := range []bool{true, false} {
		t.Run(map[bool]string{true: "run", false: "ignore"}[run], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			install(t, dir, "good", "good")
			install(t, dir, "light", "vendor_one")
			for name, mode := range map[string]os.FileMode{FilePrefix + "Bad.Name": 0o755, FilePrefix + "notes": 0o644, "README": 0o644} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("not a plugin"), mode); err != nil {
					t.Fatal(err)
				}
			}
			hs := newHarness(t, Options{Dir: dir, RunUnlisted: run, Plugins: []Spec{{Name: "good", Enabled: true}}})
			hs.start()
			rs := hs.measure()
			wantGood(t, rs, "good")
			if !run {
				// One info finding names it; it never ran.
				v := rs["vendor_one"]
				if len(rs) != 2 || v.Fault != "" || v.Version != "" || len(v.Findings) != 1 || v.Findings[0].Code != CodeUnlisted ||
					v.Findings[0].Severity != sdk.SeverityInfo || !strings.Contains(v.Findings[0].Message, filepath.Join(dir, FilePrefix+"vendor_one")) {
					t.Errorf("results %v, vendor_one %+v; want good and one core.plugin_unlisted info finding naming vendor_one", keys(rs), v)
				}
				if pids := hs.host.PIDs(); len(pids) != 1 || pids[0] != hs.pidOf("good") {
					t.Errorf("live plugins %v, want good's only", pids)
				}
				return
			}
			install(t, dir, "light", "vendor_two")
			rs = hs.measure()
			if len(rs) != 3 {
				t.Fatalf("results %v, want good, vendor_one, vendor_two", keys(rs))
			}
			for _, name := range []string{"vendor_one", "vendor_two"} {
				if r := rs[name]; r.Fault != "" || len(r.Findings) != 1 || r.Findings[0].Code != name+".ok" {
					t.Errorf("%s: %+v", name, r)
				}
			}
			// Removed from the directory: dropped and stopped.
			old := procOf(t, hs.pidOf("vendor_one"))
			mustRemove(t, filepath.Join(dir, FilePrefix+"vendor_one"))
			if rs := hs.measure(); len(rs) != 2 {
				t.Errorf("results %v after removing vendor_one", keys(rs))
			}
			waitGone(t, "the removed unlisted plugin", old)
		})
	}
}

func TestMissingAndInvalidSpecs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "good", "good")
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{
		{Name: "good", Enabled: true},
		{Name: "absent", Enabled: true},
		{Name: "Bad-Name", Enabled: true},
		{Name: "badpin", Enabled: true, SHA256: "ABC"},
	}})
	err := hs.host.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), `plugin name "Bad-Name"`) || !strings.Contains(err.Error(), "plugins.badpin: sha256 pin") {
		t.Fatalf("Start = %v, want the invalid specs named", err)
	}
	rs := hs.measure()
	wantGood(t, rs, "good")
	wantFault(t, rs, "absent", FaultMissing, CodeMissing, "no executable "+filepath.Join(dir, FilePrefix+"absent"))
	wantFault(t, rs, "Bad-Name", FaultConfig, CodeConfig, "invalid plugin spec")
	wantFault(t, rs, "badpin", FaultConfig, CodeConfig, "not 64 lowercase hex digits")
	// An enabled plugin installed later is found at the next attestation.
	install(t, dir, "good", "absent")
	wantGood(t, hs.measure(), "absent")
}

// TestGrantRefusedAtStart: the host asks Options.CheckGrant before each
// start; a refusal is an untrusted fault, repeated at every attestation,
// and the plugin never runs.
func TestGrantRefusedAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	install(t, dir, "marker", "vendor")
	var calls atomic.Int32
	refuse := func(name string, _ sandbox.Rules) error {
		calls.Add(1)
		return errors.New("plugins." + name + ": its sandbox grants read access to /keys/signing.key (signing_key_path)")
	}
	hs := newHarness(t, Options{Dir: dir, Plugins: []Spec{{Name: "vendor", Enabled: true}}, CheckGrant: refuse})
	hs.start()
	for range 2 {
		wantFault(t, hs.measure(), "vendor", FaultUntrusted, CodeUntrusted, "not started: plugins.vendor: its sandbox grants read access")
	}
	if got := markerStarts(t, dir, "vendor"); got != nil {
		t.Errorf("a plugin whose grant was refused ran: pids %v", got)
	}
	if calls.Load() < 2 {
		t.Errorf("CheckGrant called %d times, want once per start attempt", calls.Load())
	}
}
