package ostree_test

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// Origins as ostree and rpm-ostree write them.
const (
	layeredOrigin  = "[origin]\nrefspec=fedora-iot/stable\n\n[packages]\nrequested=vim-enhanced;htop;\n"
	signedImage    = "ostree-image-signed:docker://quay.io/fedora/fedora-coreos:stable"
	unverifiedRepo = "ostree-unverified-registry:quay.io/fedora/fedora-coreos:stable"
	// manifestDigest is the image digest in zincati's rpm-ostree-status.json.
	manifestDigest = "sha256:ca99893c80a7b84dd84d4143bd27538207c2f38ab6647a58d9c8caa251f9a087"
)

// scenario is a machine in some state, built with the real ostree tool.
type scenario struct {
	s       *sysroot
	booted  string // the booted commit
	serial  int
	next    string // the next boot's commit, "" for none
	version string // the booted commit's version
	base    string // the reference's base when not the booted commit
}

// fallbackResult measures a scenario without rpm-ostree.
func fallbackResult(t *testing.T, sc scenario, extra ...any) *sdktest.Result {
	t.Helper()
	return measure(t, sc.s.config(noRPMOStree(t), extra...))
}

func wantCodes(t *testing.T, name string, res *sdktest.Result, want ...string) bool {
	t.Helper()
	sort.Strings(want)
	if want == nil {
		want = []string{}
	}
	if got := codes(res.Findings); !reflect.DeepEqual(got, want) {
		t.Errorf("%s: findings = %v, want %v\n%+v", name, got, want, res.Findings)
		return false
	}
	return true
}

// TestFallbackBootedByDeviceInode: after deploys without a reboot, the
// booted deployment is the one whose device and inode /run/ostree-booted
// records, not the one the ostree= path leads to now.
func TestFallbackBootedByDeviceInode(t *testing.T) {
	t.Parallel()
	// Booted A; then B and C deployed without a reboot. libostree swapped
	// boot.1 → boot.0 → boot.1: the kernel's ostree=/ostree/boot.1/…/0
	// now leads to C.
	twoDeploys := func(t *testing.T) scenario {
		s := newSysroot(t, "fedora-iot")
		a := s.commit("41.1")
		s.deploy("fedora-iot/stable", "")
		s.boot(a, 0)
		s.commit("41.2")
		s.deploy("fedora-iot/stable", "")
		c := s.commit("41.3")
		s.deploy("fedora-iot/stable", "")
		return scenario{s: s, booted: a, next: c, version: "41.1"}
	}
	oneDeploy := pendingUpdate
	t.Run("two deploys, record", func(t *testing.T) {
		t.Parallel()
		sc := twoDeploys(t)
		res := fallbackResult(t, sc)
		if !wantCodes(t, "two deploys", res, "ostree.fallback:info", "ostree.rpm_ostree_missing:info", "ostree.staged:info") {
			return
		}
		if dep := checkDigest(t, res); dep["checksum"] != sc.booted {
			t.Errorf("booted checksum %v, want %s", dep["checksum"], sc.booted)
		}
		var by string
		must(t, res.Decode("booted_by", &by))
		var next map[string]any
		must(t, res.Decode("next_deployment", &next))
		if by != "backing-root-device-inode" || next["kind"] != "pending" || next["checksum"] != sc.next || next["version"] != "41.3" {
			t.Errorf("booted_by %q, next_deployment %v", by, next)
		}
		if plugintest.DefaultState(res.Findings) != "attested" {
			t.Error("a healthy machine with a pending update is not attested")
		}
	})
	t.Run("two deploys, no record: the karg leads to the newest", func(t *testing.T) {
		t.Parallel()
		sc := twoDeploys(t)
		sc.s.oldRecord()
		res := fallbackResult(t, sc)
		if !wantCodes(t, "karg", res, "ostree.booted_by_karg:low", "ostree.fallback:info", "ostree.rpm_ostree_missing:info") {
			return
		}
		// What the karg says, and why the finding warns about it.
		if dep := checkDigest(t, res); dep["checksum"] != sc.next {
			t.Errorf("checksum %v: the karg was expected to lead to %s", dep["checksum"], sc.next)
		}
		if f := res.Find("ostree.booted_by_karg")[0]; !strings.Contains(f.Message, "can lead to another deployment") {
			t.Errorf("message %q", f.Message)
		}
	})
	t.Run("one deploy, record", func(t *testing.T) {
		t.Parallel()
		sc := oneDeploy(t)
		res := fallbackResult(t, sc)
		if wantCodes(t, "one deploy", res, "ostree.fallback:info", "ostree.rpm_ostree_missing:info", "ostree.staged:info") {
			if dep := checkDigest(t, res); dep["checksum"] != sc.booted {
				t.Errorf("checksum %v, want %s", dep["checksum"], sc.booted)
			}
		}
	})
	t.Run("one deploy, no record: the karg leads nowhere", func(t *testing.T) {
		t.Parallel()
		sc := oneDeploy(t)
		sc.s.oldRecord()
		res := fallbackResult(t, sc)
		if wantCodes(t, "karg", res, "ostree.no_booted_deployment:high", "ostree.rpm_ostree_missing:medium") {
			if msg := res.Find("ostree.no_booted_deployment")[0].Message; !strings.Contains(msg, "no such file") {
				t.Errorf("message %q", msg)
			}
		}
	})
	t.Run("no record, the running root is the deployment", func(t *testing.T) {
		t.Parallel()
		sc := oneDeploy(t)
		sc.s.oldRecord()
		res := fallbackResult(t, sc, "root_path", sc.s.dir(sc.booted, 0))
		var by string
		if wantCodes(t, "root", res, "ostree.fallback:info", "ostree.rpm_ostree_missing:info", "ostree.staged:info") {
			must(t, res.Decode("booted_by", &by))
			if dep := checkDigest(t, res); dep["checksum"] != sc.booted || by != "root-device-inode" {
				t.Errorf("checksum %v by %q", dep["checksum"], by)
			}
		}
	})
	for _, tc := range []struct {
		name, record, message string
	}{
		{"record of no deployment", "other", "none of the 2 deployments"},
		{"record garbage", "garbage", "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := oneDeploy(t)
			switch tc.record {
			case "other":
				// The device and inode of a directory that is no deployment.
				must(t, os.WriteFile(sc.s.marker, recordOf(t, sc.s, sc.s.tree), 0o644))
			case "garbage":
				must(t, os.WriteFile(sc.s.marker, []byte("\x01\x02garbage\x07"), 0o644))
			}
			res := fallbackResult(t, sc)
			if wantCodes(t, tc.name, res, "ostree.no_booted_deployment:high", "ostree.rpm_ostree_missing:medium") {
				if msg := res.Find("ostree.no_booted_deployment")[0].Message; !strings.Contains(msg, tc.message) {
					t.Errorf("message %q, want %q", msg, tc.message)
				}
			}
		})
	}
}

// pendingUpdate: A (41.1) booted; B (41.2) deployed without a reboot, so
// boot.1, which the kernel's ostree= names, is gone.
func pendingUpdate(t *testing.T) scenario {
	s := newSysroot(t, "fedora-iot")
	a := s.commit("41.1")
	s.deploy("fedora-iot/stable", "")
	s.boot(a, 0)
	b := s.commit("41.2")
	s.deploy("fedora-iot/stable", "")
	return scenario{s: s, booted: a, next: b, version: "41.1"}
}

// recordOf is the /run/ostree-booted record of any directory.
func recordOf(t *testing.T, s *sysroot, dir string) []byte {
	t.Helper()
	dev, ino := devIno(t, dir)
	return s.record(dev, ino)
}

// TestFallbackOrigins: what the origin and the commit say, read from
// deployments the real tool wrote.
func TestFallbackOrigins(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name    string
		build   func(t *testing.T) scenario
		codes   []string
		ref     map[string]any // expected "reference" members
		unlock  string
		message map[string]string
	}{
		{name: "plain",
			build: func(t *testing.T) scenario {
				s, c := bootedMachine(t, "fedora-iot", "")
				return scenario{s: s, booted: c}
			},
			codes: []string{"ostree.fallback:info", "ostree.rpm_ostree_missing:info"},
			ref:   map[string]any{"version": "41.20250309.0", "packages": []any{}, "composefs": ""}, unlock: "none"},
		{name: "layered on a base, pinned",
			build: func(t *testing.T) scenario {
				s := newSysroot(t, "fedora-iot")
				base := s.commit("41.1")
				// rpm-ostree commits the layered tree as a child of the base.
				layered := s.commit("41.1")
				s.deploy("fedora-iot/stable", layeredOrigin)
				s.ostree("admin", "--sysroot="+s.path, "pin", "0")
				s.boot(layered, 0)
				return scenario{s: s, booted: layered, base: base}
			},
			codes: []string{"ostree.fallback:info", "ostree.layered_packages:low", "ostree.rpm_ostree_missing:info"},
			ref:   map[string]any{"version": "41.1", "packages": []any{"htop", "vim-enhanced"}}, unlock: "none"},
		{name: "signed container image",
			build: func(t *testing.T) scenario {
				s := newSysroot(t, "fedora-coreos")
				c := s.commit("43.20251024.3.0", "--add-metadata-string=ostree.manifest-digest="+manifestDigest)
				s.deploy("fedora-coreos/stable", "[origin]\ncontainer-image-reference="+signedImage+"\n")
				s.boot(c, 0)
				return scenario{s: s, booted: c}
			},
			codes: []string{"ostree.fallback:info", "ostree.rpm_ostree_missing:info"},
			ref:   map[string]any{"base": manifestDigest, "version": "43.20251024.3.0"}, unlock: "none"},
		{name: "unverified container image",
			build: func(t *testing.T) scenario {
				s := newSysroot(t, "fedora-coreos")
				c := s.commit("43.20251024.3.0", "--add-metadata-string=ostree.manifest-digest="+manifestDigest)
				s.deploy("fedora-coreos/stable", "[origin]\ncontainer-image-reference="+unverifiedRepo+"\n")
				s.boot(c, 0)
				return scenario{s: s, booted: c}
			},
			codes: []string{"ostree.fallback:info", "ostree.rpm_ostree_missing:info", "ostree.unverified_origin:medium"},
			ref:   map[string]any{"base": manifestDigest}, unlock: "none",
			message: map[string]string{"ostree.unverified_origin": "ostree-unverified-registry:quay.io/fedora/fedora-coreos:stable, pulled without any signature check"}},
		{name: "unlocked hotfix",
			// `ostree admin unlock --hotfix` needs a booted system (it
			// mounts an overlay on /usr). What it leaves on disk is a
			// second deployment of the booted commit and unlocked=hotfix
			// in the booted deployment's origin, which g_key_file writes
			// as below: the real tool writes that state here, from an
			// origin file, and the record names the hotfixed deployment.
			build: func(t *testing.T) scenario {
				s := newSysroot(t, "fedora-iot")
				c := s.commit("41.1")
				s.deploy("fedora-iot/stable", "")
				s.deploy("fedora-iot/stable", "[origin]\nrefspec=fedora-iot/stable\nunlocked=hotfix\n")
				s.boot(c, 1)
				return scenario{s: s, booted: c, serial: 1}
			},
			codes: []string{"ostree.fallback:info", "ostree.rpm_ostree_missing:info", "ostree.unlocked:high"}, unlock: "hotfix",
			ref:     map[string]any{"unlocked": "hotfix"},
			message: map[string]string{"ostree.unlocked": "is unlocked (hotfix)"}},
		{name: "unlocked development",
			// `ostree admin unlock` (development) and `--transient` record
			// the mode as an empty file under
			// /run/ostree/deployment-state/<checksum>.<serial>/, which
			// libostree checks before the origin; it needs a booted
			// system, so the test writes that file.
			build: func(t *testing.T) scenario {
				s, c := bootedMachine(t, "fedora-iot", "")
				flag := filepath.Join(s.runDir, "deployment-state", c+".0", "unlocked-development")
				must(t, os.MkdirAll(filepath.Dir(flag), 0o755))
				must(t, os.WriteFile(flag, nil, 0o644))
				return scenario{s: s, booted: c}
			},
			codes: []string{"ostree.fallback:info", "ostree.rpm_ostree_missing:info", "ostree.unlocked:high"}, unlock: "development",
			ref: map[string]any{"unlocked": "development"}},
	} {
		sc := tc.build(t)
		res := fallbackResult(t, sc)
		name := tc.name
		if !wantCodes(t, name, res, tc.codes...) {
			continue
		}
		dep := checkDigest(t, res)
		if dep["checksum"] != sc.booted || dep["serial"] != float64(sc.serial) {
			t.Errorf("Test %d (%s): deployment %v, want %s.%d", i, name, dep, sc.booted, sc.serial)
		}
		if o := dep["origin"].(map[string]any); o["libostree-transient"] != nil {
			t.Errorf("Test %d (%s): the transient group is in the digest: %v", i, name, o)
		}
		ref := checkReference(t, res)
		wantBase := sc.booted
		if sc.base != "" {
			wantBase = sc.base
		}
		if b, ok := tc.ref["base"]; ok {
			wantBase = b.(string)
		}
		if ref["base"] != wantBase {
			t.Errorf("Test %d (%s): base %v, want %s", i, name, ref["base"], wantBase)
		}
		if _, ok := res.Measurements["next_deployment"]; ok {
			t.Errorf("Test %d (%s): a next deployment: %s", i, name, res.Measurements["next_deployment"])
		}
		for k, v := range tc.ref {
			if !reflect.DeepEqual(ref[k], v) {
				t.Errorf("Test %d (%s): reference %s = %v, want %v", i, name, k, ref[k], v)
			}
		}
		var unlocked string
		must(t, res.Decode("unlocked", &unlocked))
		if unlocked != tc.unlock {
			t.Errorf("Test %d (%s): unlocked %q, want %q", i, name, unlocked, tc.unlock)
		}
		for code, msg := range tc.message {
			if f := res.Find(code); len(f) == 0 || !strings.Contains(f[0].Message, msg) {
				t.Errorf("Test %d (%s): %s message %v, want %q", i, name, code, f, msg)
			}
		}
	}
}

// TestFallbackPinDoesNotChangeDigests: pinning rewrites the origin's
// libostree-transient group; neither digest moves.
func TestFallbackPinDoesNotChangeDigests(t *testing.T) {
	t.Parallel()
	s, c := bootedMachine(t, "fedora-iot", "")
	sc := scenario{s: s, booted: c}
	before := fallbackResult(t, sc)
	s.ostree("admin", "--sysroot="+s.path, "pin", "0")
	if !strings.Contains(mustRead(t, s.dir(c, 0)+".origin"), "pinned=true") {
		t.Fatal("ostree admin pin did not write pinned=true")
	}
	after := fallbackResult(t, sc)
	for _, k := range []string{"deployment_digest", "deployment_reference"} {
		if string(before.Measurements[k]) != string(after.Measurements[k]) {
			t.Errorf("%s changed with pinning: %s → %s", k, before.Measurements[k], after.Measurements[k])
		}
	}
}

// TestFallbackBroken: real sysroots with one part broken.
func TestFallbackBroken(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name    string
		old     bool // /run/ostree-booted without device and inode: the karg is used
		mutate  func(t *testing.T, s *sysroot, c string)
		message string
	}{
		{name: "origin missing", mutate: func(t *testing.T, s *sysroot, c string) { must(t, os.Remove(s.dir(c, 0)+".origin")) }, message: "read origin"},
		{name: "origin garbage", mutate: func(t *testing.T, s *sysroot, c string) {
			must(t, os.WriteFile(s.dir(c, 0)+".origin", []byte("\x7fELF\x02\x01\x01\x00garbage"), 0o600))
		}, message: "parse"},
		{name: "origin huge", mutate: func(t *testing.T, s *sysroot, c string) {
			must(t, os.WriteFile(s.dir(c, 0)+".origin", []byte("[origin]\nrefspec="+strings.Repeat("x", 2<<20)+"\n"), 0o600))
		}, message: "larger than"},
		{name: "origin is a FIFO", mutate: func(t *testing.T, s *sysroot, c string) {
			must(t, os.Remove(s.dir(c, 0)+".origin"))
			must(t, mkfifo(s.dir(c, 0)+".origin"))
		}, message: "not a regular file"},
		{name: "commit object missing", mutate: func(t *testing.T, s *sysroot, c string) {
			must(t, os.Remove(filepath.Join(s.path, "ostree", "repo", "objects", c[:2], c[2:]+".commit")))
		}, message: "read the deployment's commit"},
		{name: "commit object garbage", mutate: func(t *testing.T, s *sysroot, c string) {
			must(t, os.WriteFile(filepath.Join(s.path, "ostree", "repo", "objects", c[:2], c[2:]+".commit"), []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), 0o600))
		}, message: "commit"},
		{name: "no ostree= argument", old: true, mutate: func(t *testing.T, s *sysroot, _ string) { must(t, os.WriteFile(s.cmdline, []byte("quiet\n"), 0o600)) }, message: "no ostree= argument"},
		{name: "two ostree= arguments", old: true, mutate: func(t *testing.T, s *sysroot, c string) {
			o := s.options(c, 0)
			must(t, os.WriteFile(s.cmdline, []byte(o+" "+strings.Replace(o, "boot.1", "boot.0", 1)+"\n"), 0o600))
		}, message: "ambiguous"},
		{name: "cmdline missing", old: true, mutate: func(t *testing.T, s *sysroot, _ string) { must(t, os.Remove(s.cmdline)) }, message: "read kernel command line"},
		{name: "boot symlink escaping upwards", old: true, mutate: func(t *testing.T, s *sysroot, _ string) {
			link := bootLink(t, s)
			must(t, os.Remove(link))
			must(t, os.Symlink("../../../../../../../../../../etc", link))
		}, message: "resolve"},
		{name: "boot symlink to no deployment", old: true, mutate: func(t *testing.T, s *sysroot, _ string) {
			link := bootLink(t, s)
			must(t, os.Remove(link))
			must(t, os.Symlink("../../../deploy/"+s.osname, link))
		}, message: "is not ostree/deploy/"},
	} {
		s, c := bootedMachine(t, "fedora-iot", "")
		if tc.old {
			s.oldRecord()
		}
		tc.mutate(t, s, c)
		res := fallbackResult(t, scenario{s: s, booted: c})
		if !wantCodes(t, tc.name, res, "ostree.no_booted_deployment:high", "ostree.rpm_ostree_missing:medium") {
			continue
		}
		if msg := res.Find("ostree.no_booted_deployment")[0].Message; !strings.Contains(msg, tc.message) {
			t.Errorf("Test %d (%s): message %q, want it to contain %q", i, tc.name, msg, tc.message)
		}
		if _, ok := res.Measurements["deployment_digest"]; ok {
			t.Errorf("Test %d (%s): digest without a deployment", i, tc.name)
		}
	}
	// An absolute boot symlink resolves inside the sysroot.
	s, c := bootedMachine(t, "fedora-iot", "")
	s.oldRecord()
	link := bootLink(t, s)
	must(t, os.Remove(link))
	must(t, os.Symlink("/"+s.rel(c, 0), link))
	res := fallbackResult(t, scenario{s: s, booted: c})
	if wantCodes(t, "absolute symlink", res, "ostree.booted_by_karg:low", "ostree.fallback:info", "ostree.rpm_ostree_missing:info") {
		if dep := checkDigest(t, res); dep["checksum"] != c {
			t.Errorf("absolute symlink: %v", dep)
		}
	}
}

// bootLink is the boot.N/<osname>/<bootcsum>/0 symlink ostree wrote.
func bootLink(t *testing.T, s *sysroot) string {
	t.Helper()
	links, err := filepath.Glob(filepath.Join(s.path, "ostree", "boot.*.*", s.osname, "*", "0"))
	must(t, err)
	if len(links) != 1 {
		t.Fatalf("boot links %v", links)
	}
	return links[0]
}

// TestFallbackStaged: a staged deployment, which libostree records in
// /run/ostree/staged-deployment until shutdown. `ostree admin deploy
// --stage` needs a booted system; the closest real state is the deployment
// checked out by the real tool without becoming the default
// (--not-as-default), and the state file as libostree's
// serialize_deployment_to_variant writes it, serialized by GLib through
// `ostree commit --add-metadata`.
func TestFallbackStaged(t *testing.T) {
	t.Parallel()
	s := newSysroot(t, "fedora-iot")
	a := s.commit("41.1")
	s.deploy("fedora-iot/stable", "")
	s.boot(a, 0)
	b := s.commit("41.2")
	s.ostree("admin", "--sysroot="+s.path, "deploy", "--retain", "--not-as-default", "--os=fedora-iot", "fedora-iot/stable")
	bootcsum := filepath.Base(filepath.Dir(bootLink(t, s)))
	state := s.vardict(
		"--add-metadata=target={'name': <'"+b+".0'>, 'osname': <'fedora-iot'>, 'bootcsum': <'"+bootcsum+"'>}",
		"--add-metadata=merge-deployment={'name': <'"+a+".0'>, 'osname': <'fedora-iot'>, 'bootcsum': <'"+bootcsum+"'>}")
	must(t, os.MkdirAll(s.runDir, 0o755))
	must(t, os.WriteFile(filepath.Join(s.runDir, "staged-deployment"), state, 0o644))
	res := fallbackResult(t, scenario{s: s})
	if wantCodes(t, "staged", res, "ostree.fallback:info", "ostree.rpm_ostree_missing:info", "ostree.staged:info") {
		checkNext(t, "staged", res, map[string]any{"kind": "staged", "checksum": b, "version": "41.2"})
		if dep := checkDigest(t, res); dep["checksum"] != a {
			t.Errorf("booted %v, want %s", dep["checksum"], a)
		}
	}
	// Garbage in the state file is a finding about the next boot.
	must(t, os.WriteFile(filepath.Join(s.runDir, "staged-deployment"), []byte("garbage\x07"), 0o644))
	res = fallbackResult(t, scenario{s: s})
	wantCodes(t, "staged garbage", res, "ostree.fallback:info", "ostree.rpm_ostree_missing:info", "ostree.staged_unexpected:high")
}

// TestFallbackWithoutBootEntries: a boot partition without loader entries
// (not mounted where boot_path says) hides the pending deployment, and is
// no alarm about the booted one.
func TestFallbackWithoutBootEntries(t *testing.T) {
	t.Parallel()
	sc := pendingUpdate(t)
	res := fallbackResult(t, sc, "boot_path", t.TempDir())
	if wantCodes(t, "no entries", res, "ostree.fallback:info", "ostree.rpm_ostree_missing:info") {
		checkNext(t, "no entries", res, nil)
	}
}
