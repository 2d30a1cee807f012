package ostree

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestParseStatusFixtures(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		file         string
		deployments  int
		bootedID     string
		base         string
		container    string
		origin       string
		packages     []string
		local        []string
		stagedID     string
		bootedSerial int64
	}{
		{file: "status-plain.json", deployments: 2, bootedID: "fedora-iot-7df00cefdb9b4a6dc82e0f8675f5b16c4d4cc8b3217f01bef1943a040754f4e8.0", origin: "fedora-iot:fedora/stable/x86_64/iot"},
		{file: "status-layered.json", deployments: 2, bootedID: "fedora-e914be4225df42c56088c87d01d48745a7ca4d22f9226f8027d0889f6ec9ac69.0",
			base: "2688ebd8bb07649adacee7717120b40d8f8d02dad66a0018f89f1e2b1d9f9762", origin: "fedora:fedora/41/x86_64/silverblue",
			packages: []string{"vim-enhanced", "htop"}, local: []string{"secure-ai-agent-1.4.2-1.fc41.x86_64"}},
		{file: "status-staged.json", deployments: 3, bootedID: "rhel-75a88ad4788ae23c4d185aacf067d56a3e651d3cccb9c87697f804825150be0b.0", origin: "edge:rhel/9/x86_64/edge",
			stagedID: "rhel-cb3b6510f51c7d2f6dc9fdbf44805ed4bfa47923c0af18751326b98826008431.0"},
		{file: "status-container.json", deployments: 2, bootedID: "fedora-coreos-bda246d39d8d165d0d71e5f4dc65f9d064c4f268a9d2bcb8547d0703b22e7f29.0",
			container: "ostree-remote-registry:fedora:quay.io/fedora/fedora-coreos:stable"},
	} {
		st, err := ParseStatus(readFixture(t, tc.file))
		if err != nil {
			t.Fatalf("Test %d (%s): %v", i, tc.file, err)
		}
		if len(st.Deployments) != tc.deployments {
			t.Errorf("Test %d (%s): %d deployments", i, tc.file, len(st.Deployments))
		}
		d, err := st.Booted()
		if err != nil {
			t.Fatalf("Test %d (%s): %v", i, tc.file, err)
		}
		if d.ID != tc.bootedID || d.BaseChecksum != tc.base || d.ContainerImageReference != tc.container || d.Origin != tc.origin || d.Serial != tc.bootedSerial ||
			!reflect.DeepEqual(d.Packages, tc.packages) && len(tc.packages)+len(d.Packages) > 0 ||
			!reflect.DeepEqual(d.RequestedLocalPackages, tc.local) && len(tc.local)+len(d.RequestedLocalPackages) > 0 {
			t.Errorf("Test %d (%s): booted = %+v", i, tc.file, d)
		}
		if !strings.HasSuffix(d.ID, d.Checksum+".0") || !strings.HasPrefix(d.ID, d.OSName+"-") {
			t.Errorf("Test %d (%s): id %q does not match osname %q and checksum %q", i, tc.file, d.ID, d.OSName, d.Checksum)
		}
		staged, isStaged := st.Next()
		if (staged == nil) != (tc.stagedID == "") || staged != nil && (staged.ID != tc.stagedID || !isStaged) {
			t.Errorf("Test %d (%s): staged = %+v, want %q", i, tc.file, staged, tc.stagedID)
		}
	}
	st, err := ParseStatus(readFixture(t, "status-no-booted.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Booted(); !errors.Is(err, ErrNoBooted) {
		t.Fatalf("no-booted fixture: err = %v", err)
	}
}

func TestParseStatusBad(t *testing.T) {
	t.Parallel()
	plain := readFixture(t, "status-plain.json")
	good := string(plain)
	for i, tc := range []struct {
		in   string
		want string
	}{
		{"", "empty output"},
		{"  \n\t", "empty output"},
		{"garbage", "not a JSON object"},
		{"\x00\x01\x02", "not a JSON object"},
		{"[]", "not a JSON object"},
		{"null", "no \"deployments\" array"},
		{"{}", "no \"deployments\" array"},
		{`{"deployments":null}`, "no \"deployments\" array"},
		{`{"deployments":{}}`, "cannot unmarshal"},
		{`{"deployments":[{"checksum":"abc","osname":"x"}]}`, "checksum \"abc\""},
		{`{"deployments":[{"checksum":"` + strings.Repeat("A", 64) + `","osname":"x"}]}`, "not 64 lowercase hex"},
		{`{"deployments":[{"checksum":"` + strings.Repeat("a", 64) + `","osname":""}]}`, "osname: empty"},
		{`{"deployments":[{"checksum":"` + strings.Repeat("a", 64) + `","osname":"../etc"}]}`, "not a stateroot name"},
		{`{"deployments":[{"checksum":"` + strings.Repeat("a", 64) + `","osname":"x","base-checksum":"zz"}]}`, "base-checksum"},
		{`{"deployments":[{"checksum":"` + strings.Repeat("a", 64) + `","osname":"x","serial":-1}]}`, "serial -1"},
		{`{"deployments":[{"checksum":"` + strings.Repeat("a", 64) + `","osname":"x","booted":"yes"}]}`, "cannot unmarshal"},
		{`{"deployments":[{"checksum":"` + strings.Repeat("a", 64) + `","osname":"x","packages":"vim"}]}`, "cannot unmarshal"},
		{`{"deployments":[{"checksum":"` + strings.Repeat("a", 64) + `","osname":"x","booted":true},{"checksum":"` + strings.Repeat("b", 64) + `","osname":"x","booted":true}]}`, "2 deployments are marked booted"},
		{`{"deployments":[{"checksum":"` + strings.Repeat("a", 64) + `","osname":"x","staged":true},{"checksum":"` + strings.Repeat("b", 64) + `","osname":"x","staged":true}]}`, "2 deployments are marked staged"},
		{good + good, "not a JSON object"},
		{good + "x", "not a JSON object"},
	} {
		_, err := ParseStatus([]byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: ParseStatus(%.40q) = %v, want an error containing %q", i, tc.in, err, tc.want)
		}
	}
	// Every truncation of a real output is refused.
	for n := 0; n < len(plain)-2; n += 7 {
		if _, err := ParseStatus(plain[:n]); err == nil {
			t.Fatalf("truncated at %d of %d bytes: accepted", n, len(plain))
		}
	}
}

// TestDigestDefinition pins deployment_digest to its documented definition:
// SHA-256 of the RFC 8785 canonical JSON of the identity object.
func TestDigestDefinition(t *testing.T) {
	t.Parallel()
	st, err := ParseStatus(readFixture(t, "status-plain.json"))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := st.Booted()
	got, err := Digest(IdentityOf(d))
	if err != nil {
		t.Fatal(err)
	}
	canon := `{"base_checksum":"","checksum":"7df00cefdb9b4a6dc82e0f8675f5b16c4d4cc8b3217f01bef1943a040754f4e8","container_image_reference":"",` +
		`"origin":"fedora-iot:fedora/stable/x86_64/iot","osname":"fedora-iot","packages":[],"requested_local_packages":[],"requested_packages":[],` +
		`"serial":0,"source":"rpm-ostree","version":"41.20250309.0"}`
	if want := sha256Hex(canon); got != want {
		t.Fatalf("rpm-ostree digest = %s, want sha256(%s) = %s", got, canon, want)
	}

	kf, err := ParseKeyFile(readFixture(t, "origin-layered.origin"))
	if err != nil {
		t.Fatal(err)
	}
	got, err = Digest(NewFilesIdentity("fedora", "e914be4225df42c56088c87d01d48745a7ca4d22f9226f8027d0889f6ec9ac69", 2, kf, ""))
	if err != nil {
		t.Fatal(err)
	}
	canon = `{"checksum":"e914be4225df42c56088c87d01d48745a7ca4d22f9226f8027d0889f6ec9ac69","origin":{"origin":{"refspec":"fedora:fedora/41/x86_64/silverblue"},` +
		`"packages":{"requested":"vim-enhanced;htop;","requested-local":"ceb74f9516922dcd3681c8ab58cd22e9e32c8e049959e5836c5b1a379a16a3ce:secure-ai-agent-1.4.2-1.fc41.x86_64;"}},` +
		`"osname":"fedora","serial":2,"source":"ostree-files"}`
	if want := sha256Hex(canon); got != want {
		t.Fatalf("files digest = %s, want sha256(%s) = %s", got, canon, want)
	}
}

// TestDigestStability: what is not the deployment's identity does not move
// the digest; what is, does.
func TestDigestStability(t *testing.T) {
	t.Parallel()
	st, err := ParseStatus(readFixture(t, "status-layered.json"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.Booted()
	base, _ := Digest(IdentityOf(b))
	same := *b
	same.Pinned, same.Timestamp, same.Staged, same.Booted, same.ID = !b.Pinned, 1, true, false, "other"
	same.Packages = []string{"htop", "vim-enhanced"} // order does not matter
	if d, _ := Digest(IdentityOf(&same)); d != base {
		t.Errorf("pinned/timestamp/booted/package order changed the digest")
	}
	for i, mutate := range []func(d *Deployment){
		func(d *Deployment) { d.Checksum = strings.Repeat("1", 64) },
		func(d *Deployment) { d.Serial = 1 },
		func(d *Deployment) { d.OSName = "other" },
		func(d *Deployment) { d.BaseChecksum = "" },
		func(d *Deployment) { d.Origin = "fedora:fedora/42/x86_64/silverblue" },
		func(d *Deployment) { d.ContainerImageReference = "ostree-unverified-registry:x" },
		func(d *Deployment) { d.Version = "41.1" },
		func(d *Deployment) { d.Packages = append([]string{"zsh"}, d.Packages...) },
		func(d *Deployment) { d.RequestedPackages = nil },
		func(d *Deployment) { d.RequestedLocalPackages = nil },
	} {
		m := *b
		mutate(&m)
		if d, _ := Digest(IdentityOf(&m)); d == base {
			t.Errorf("Test %d: an identity change left the digest unchanged", i)
		}
	}
	// The fallback ignores the transient group (pinning).
	kf, _ := ParseKeyFile(readFixture(t, "origin-layered.origin"))
	a, _ := Digest(NewFilesIdentity("fedora", b.Checksum, 0, kf, ""))
	delete(kf, TransientGroup)
	if c, _ := Digest(NewFilesIdentity("fedora", b.Checksum, 0, kf, "")); a != c {
		t.Errorf("libostree-transient changed the files digest")
	}
}

func TestOstreeArg(t *testing.T) {
	t.Parallel()
	iot := string(readFixture(t, "cmdline-fedora-iot"))
	for i, tc := range []struct {
		in, want, err string
	}{
		{in: iot, want: "/ostree/boot.1/fedora-iot/f7763748bf95687991fab8557070df43fcc7c191d490d2af326cb4532e6c2038/0"},
		{in: "ostree=/ostree/boot.0/x/y/0", want: "/ostree/boot.0/x/y/0"},
		{in: "a ostree=/ostree/boot.0/x/y/0 b ostree=/ostree/boot.0/x/y/0", want: "/ostree/boot.0/x/y/0"},
		{in: string(readFixture(t, "cmdline-debian")), err: "no ostree= argument"},
		{in: "", err: "no ostree= argument"},
		{in: "xostree=/ostree/boot.0/a/b/0", err: "no ostree= argument"},
		{in: "ostree=", err: "no ostree= argument"},
		{in: "ostree=/ostree/boot.0/a/b/0 ostree=/ostree/boot.1/a/b/0", err: "ambiguous"},
		{in: "ostree=/etc/passwd", err: "not a clean path under /ostree/"},
		{in: "ostree=/ostree/../etc", err: "not a clean path"},
		{in: "ostree=ostree/boot.0/a", err: "not a clean path"},
	} {
		got, err := OstreeArg(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Test %d: OstreeArg(%q) = %q, %v; want error containing %q", i, tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Test %d: OstreeArg(%q) = %q, %v; want %q", i, tc.in, got, err, tc.want)
		}
	}
}

func TestParseDeployPath(t *testing.T) {
	t.Parallel()
	c := strings.Repeat("ab", 32)
	for i, tc := range []struct {
		in     string
		osname string
		serial int64
		err    bool
	}{
		{in: "ostree/deploy/fedora/deploy/" + c + ".0", osname: "fedora"},
		{in: "ostree/deploy/rhel/deploy/" + c + ".12", osname: "rhel", serial: 12},
		{in: "ostree/deploy/fedora/deploy/" + c + ".01", err: true},
		{in: "ostree/deploy/fedora/deploy/" + c + ".-1", err: true},
		{in: "ostree/deploy/fedora/deploy/" + c + ".", err: true},
		{in: "ostree/deploy/fedora/deploy/" + c, err: true},
		{in: "ostree/deploy/fedora/deploy/" + c + ".99999999999", err: true},
		{in: "ostree/deploy/fedora/deploy/" + strings.ToUpper(c) + ".0", err: true},
		{in: "ostree/deploy/fedora/deploy/" + c + ".0/usr", err: true},
		{in: "ostree/boot.1.1/fedora/" + c + "/0", err: true},
		{in: "ostree/deploy/../deploy/" + c + ".0", err: true},
		{in: "", err: true},
	} {
		osname, sum, serial, err := ParseDeployPath(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("Test %d: ParseDeployPath(%q) accepted", i, tc.in)
			}
			continue
		}
		if err != nil || osname != tc.osname || sum != c || serial != tc.serial {
			t.Errorf("Test %d: ParseDeployPath(%q) = %q %q %d %v", i, tc.in, osname, sum, serial, err)
		}
	}
}

func TestParseKeyFile(t *testing.T) {
	t.Parallel()
	kf, err := ParseKeyFile(readFixture(t, "origin-layered.origin"))
	if err != nil {
		t.Fatal(err)
	}
	want := KeyFile{
		"origin":              {"refspec": "fedora:fedora/41/x86_64/silverblue"},
		"packages":            {"requested": "vim-enhanced;htop;", "requested-local": "ceb74f9516922dcd3681c8ab58cd22e9e32c8e049959e5836c5b1a379a16a3ce:secure-ai-agent-1.4.2-1.fc41.x86_64;"},
		"libostree-transient": {"pinned": "true"},
	}
	if !reflect.DeepEqual(kf, want) {
		t.Fatalf("origin-layered = %v", kf)
	}
	if got := ListValue(kf["packages"]["requested"]); !reflect.DeepEqual(got, []string{"vim-enhanced", "htop"}) {
		t.Fatalf("ListValue = %v", got)
	}
	for i, tc := range []struct {
		in   string
		want KeyFile
		err  string
	}{
		{in: "", want: KeyFile{}},
		{in: "# comment\n\n[g]\n  k = v \r\nk2=\n", want: KeyFile{"g": {"k": "v ", "k2": ""}}},
		{in: "[g]\nk=1\nk=2\n[h]\n[g]\nj=3", want: KeyFile{"g": {"k": "2", "j": "3"}, "h": {}}},
		{in: "[g]\nName[de]=x", want: KeyFile{"g": {"Name[de]": "x"}}},
		{in: "k=v\n[g]", err: "outside any group"},
		{in: "[g\nk=v", err: "malformed group header"},
		{in: "[g] x\n", err: "malformed group header"},
		{in: "[]\n", err: "invalid group name"},
		{in: "[g]\njunk\n", err: "not a key=value"},
		{in: "[g]\n=v\n", err: "not a key=value"},
		{in: "[g]\nk[=v\n", err: "not a key=value"},
		{in: "[g]\nk=\xff\n", err: "UTF-8"},
	} {
		got, err := ParseKeyFile([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Test %d: ParseKeyFile(%q) = %v, %v; want error %q", i, tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Test %d: ParseKeyFile(%q) = %v, %v; want %v", i, tc.in, got, err, tc.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	def, err := ParseConfig(sdk.NewConfig([]byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	want := Settings{RPMOStree: "rpm-ostree", Timeout: 20 * time.Second, RunOstreeBooted: "/run/ostree-booted", Sysroot: "/sysroot", CmdlinePath: "/proc/cmdline", MaxOutputBytes: 16 << 20,
		RunOstreeDir: "/run/ostree", BootPath: "/boot", RootPath: "/"}
	if !reflect.DeepEqual(def, want) || !reflect.DeepEqual(DefaultSettings(), want) {
		t.Fatalf("defaults = %+v, want %+v", def, want)
	}
	full, err := ParseConfig(sdk.NewConfig(readFixture(t, "config-example.json")))
	if err != nil {
		t.Fatal(err)
	}
	if full.RPMOStree != "/usr/bin/rpm-ostree" || full.Timeout != 30*time.Second || full.ExpectedChecksum != "7df00cefdb9b4a6dc82e0f8675f5b16c4d4cc8b3217f01bef1943a040754f4e8" ||
		!reflect.DeepEqual(full.Expected, map[string]bool{"9a48e5a81da3ef59c608c4472bbd6eb7d5596cab8fa9dc39bd039458513bd403": true, "3e6116ce3627edfb62bcde0b1ba3cb809190569f176c4a8b6bd32b1f39258947": true}) {
		t.Fatalf("example = %+v", full)
	}
	for i, tc := range []struct {
		cfg, key, msg string
	}{
		{`{"rpmostree":"x"}`, "rpmostree", "unknown key"},
		{`{"rpm_ostree":""}`, "rpm_ostree", "empty"},
		{`{"rpm_ostree":"bin/rpm-ostree"}`, "rpm_ostree", "neither"},
		{`{"timeout":"soon"}`, "timeout", "not a duration"},
		{`{"timeout":"0s"}`, "timeout", "positive"},
		{`{"timeout":"-1s"}`, "timeout", "positive"},
		{`{"timeout":"11m"}`, "timeout", "at most"},
		{`{"timeout":20}`, "timeout", "wrong type"},
		{`{"expected_checksum":"abc"}`, "expected_checksum", "64 hex"},
		{`{"run_ostree_booted":"run/ostree-booted"}`, "run_ostree_booted", "absolute"},
		{`{"sysroot":""}`, "sysroot", "absolute"},
		{`{"cmdline_path":"proc/cmdline"}`, "cmdline_path", "absolute"},
		{`{"max_output_bytes":10}`, "max_output_bytes", "between"},
		{`{"max_output_bytes":4294967296}`, "max_output_bytes", "between"},
		{`{"expected_deployments":["abc"]}`, "expected_deployments", "entry 0"},
		{`{"expected_deployments":"abc"}`, "expected_deployments", "wrong type"},
		{`{"run_ostree_dir":"run/ostree"}`, "run_ostree_dir", "absolute"},
		{`{"boot_path":""}`, "boot_path", "absolute"},
		{`{"root_path":"."}`, "root_path", "absolute"},
	} {
		_, err := ParseConfig(sdk.NewConfig([]byte(tc.cfg)))
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(ce.Msg, tc.msg) {
			t.Errorf("Test %d: ParseConfig(%s) = %v, want key %q and %q", i, tc.cfg, err, tc.key, tc.msg)
		}
	}
	up, err := ParseConfig(sdk.NewConfig([]byte(`{"expected_checksum":"` + strings.Repeat("AB", 32) + `"}`)))
	if err != nil || up.ExpectedChecksum != strings.Repeat("ab", 32) {
		t.Fatalf("upper-case checksum: %+v %v", up, err)
	}
}

func TestPrintableAndClip(t *testing.T) {
	t.Parallel()
	if got := printable("error: a\n\tb\x1b[31m\xff"); got != "error: a  b?[31m\uFFFD" {
		t.Errorf("printable = %q", got)
	}
	if got := clip("ééé", 5); got != "é…" {
		t.Errorf("clip = %q", got)
	}
}

// FuzzParseStatus: never panics; an accepted status has exactly the
// invariants the check relies on.
func FuzzParseStatus(f *testing.F) {
	for _, n := range []string{"status-plain.json", "status-layered.json", "status-staged.json", "status-container.json", "status-no-booted.json"} {
		f.Add(readFixture(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseStatus(data)
		if err != nil {
			return
		}
		booted := 0
		for _, d := range st.Deployments {
			if !ValidChecksum(d.Checksum) || d.OSName == "" || strings.Contains(d.OSName, "/") || d.Serial < 0 {
				t.Fatalf("accepted invalid deployment %+v", d)
			}
			if d.Booted {
				booted++
			}
		}
		if booted > 1 {
			t.Fatal("accepted two booted deployments")
		}
		if b, err := st.Booted(); err == nil {
			if _, err := Digest(IdentityOf(b)); err != nil {
				t.Fatalf("digest of an accepted deployment: %v", err)
			}
		}
	})
}

// FuzzOstreeArg: an accepted argument is a clean path under /ostree/.
func FuzzOstreeArg(f *testing.F) {
	f.Add(string(readFixture(f, "cmdline-fedora-iot")))
	f.Add(string(readFixture(f, "cmdline-debian")))
	f.Add("ostree=/ostree/boot.0/a/b/0 ostree=/ostree/boot.1/a/b/0")
	f.Fuzz(func(t *testing.T, cmdline string) {
		v, err := OstreeArg(cmdline)
		if err != nil {
			return
		}
		if !strings.HasPrefix(v, "/ostree/") || filepath.Clean(v) != v || strings.ContainsAny(v, " \t\n") {
			t.Fatalf("accepted %q", v)
		}
	})
}

// FuzzParseDeployPath: an accepted path rebuilds exactly from its parts.
func FuzzParseDeployPath(f *testing.F) {
	f.Add("ostree/deploy/fedora/deploy/" + strings.Repeat("ab", 32) + ".0")
	f.Add("ostree/deploy/x/deploy/" + strings.Repeat("0", 64) + ".17")
	f.Fuzz(func(t *testing.T, rel string) {
		osname, sum, serial, err := ParseDeployPath(rel)
		if err != nil {
			return
		}
		if again := "ostree/deploy/" + osname + "/deploy/" + sum + "." + strconv.FormatInt(serial, 10); again != rel {
			t.Fatalf("ParseDeployPath(%q) = %q %q %d, which rebuilds as %q", rel, osname, sum, serial, again)
		}
	})
}

// FuzzParseKeyFile: never panics; accepted files give groups and keys
// without control characters, and the digest of any accepted origin works.
func FuzzParseKeyFile(f *testing.F) {
	for _, n := range []string{"origin-plain.origin", "origin-layered.origin", "origin-container.origin"} {
		f.Add(readFixture(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		kf, err := ParseKeyFile(data)
		if err != nil {
			return
		}
		for g, kv := range kf {
			if g == "" || hasControl(g) {
				t.Fatalf("bad group %q", g)
			}
			for k := range kv {
				if k == "" || hasControl(k) {
					t.Fatalf("bad key %q", k)
				}
			}
		}
		if _, err := Digest(NewFilesIdentity("x", strings.Repeat("a", 64), 0, kf, "")); err != nil {
			t.Fatalf("digest: %v", err)
		}
	})
}

// FuzzParseConfig: refusals are *sdk.ConfigError; accepted settings are
// usable.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add(readFixture(f, "config-example.json"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseConfig(sdk.NewConfig(data))
		if err != nil {
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("%v is not a *sdk.ConfigError", err)
			}
			return
		}
		if s.Timeout <= 0 || s.MaxOutputBytes < 1024 || s.RPMOStree == "" || !filepath.IsAbs(s.Sysroot) || !filepath.IsAbs(s.CmdlinePath) || !filepath.IsAbs(s.RunOstreeBooted) ||
			(s.ExpectedChecksum != "" && !ValidChecksum(s.ExpectedChecksum)) {
			t.Fatalf("accepted unusable settings %+v", s)
		}
	})
}
