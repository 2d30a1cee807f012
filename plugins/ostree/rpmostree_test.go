package ostree_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/plugintest"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

// Booted and staged commits in zincati's fixtures.
const (
	zincatiImageBooted  = "36ff46d732a070a1bf10f7157f764e316f99a836dcdbf56702798e5042411fe9"
	zincatiStagedBooted = "01f074cc6cd88d8d2b43f821da692f2367c101eb4377802cb35092bde0ef02f7"
	zincatiStaged       = "967b7b8d624e6d10ff51c2e81ef198fae966c567ac2e9b479771c693d0987949"
)

// zincati returns a zincati fixture, checked byte for byte against the
// digest testdata/README.md gives, with replacements applied in order
// (old, new, old, new, …), each required to match once.
func zincati(t *testing.T, name string, replace ...string) string {
	t.Helper()
	sums := map[string]string{
		"zincati-rpm-ostree-status.json": "046210e6380ac47592e8f08c72ac087873d699b51a5267ed18882292a3815df1",
		"zincati-rpm-ostree-staged.json": "c350d794c7a4e5e87d33db372c577b6c916be80a4e5c40962f3d9711a0e227e7",
	}
	data := mustRead(t, fixturePath(t, name))
	sum := sha256.Sum256([]byte(data))
	if hex.EncodeToString(sum[:]) != sums[name] {
		t.Fatalf("%s is not the byte-exact copy testdata/README.md names", name)
	}
	for i := 0; i+1 < len(replace); i += 2 {
		if n := strings.Count(data, replace[i]); n != 1 {
			t.Fatalf("%s: %q occurs %d times, want once", name, replace[i], n)
		}
		data = strings.Replace(data, replace[i], replace[i+1], 1)
	}
	return data
}

// printsJSON is a fake rpm-ostree printing data.
func printsJSON(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "status.json")
	must(t, os.WriteFile(p, []byte(data), 0o600))
	return fakeRPMOStree(t, "exec cat '"+p+"'")
}

// The booted deployment in zincati's staged fixture is the second one; its
// "unlocked" member comes right after "deployments" of the second entry.
const stagedFixtureBootedUnlocked = `    {
      "unlocked" : "none",
      "pending-base-version"`

// TestZincatiFixtures measures rpm-ostree's status JSON from zincati's
// test data, and variants of it.
func TestZincatiFixtures(t *testing.T) {
	t.Parallel()
	staged := map[string]any{"kind": "staged", "checksum": zincatiStaged, "version": "31.20200517.3.0", "id": "fedora-coreos-" + zincatiStaged + ".0"}
	for i, tc := range []struct {
		name     string
		fixture  string
		replace  []string
		extra    []any
		checksum string
		codes    []string
		state    string
		ref      map[string]any
		next     map[string]any
		digest   string // the worked examples of README.md and docs/bundle.md
	}{
		{name: "signed image", fixture: "zincati-rpm-ostree-status.json", checksum: zincatiImageBooted, codes: nil, state: "attested",
			ref:    map[string]any{"base": manifestDigest, "version": "43.20251024.3.0", "packages": []any{}, "composefs": ""},
			digest: "3e6116ce3627edfb62bcde0b1ba3cb809190569f176c4a8b6bd32b1f39258947"},
		{name: "unverified image", fixture: "zincati-rpm-ostree-status.json", replace: []string{"ostree-image-signed:docker://", "ostree-unverified-registry:"},
			checksum: zincatiImageBooted, codes: []string{"ostree.unverified_origin:medium"}, state: "degraded",
			ref: map[string]any{"base": manifestDigest}},
		{name: "staged update", fixture: "zincati-rpm-ostree-staged.json", checksum: zincatiStagedBooted, codes: []string{"ostree.staged:info"}, state: "attested",
			ref:    map[string]any{"base": zincatiStagedBooted, "version": "31.20200505.3.0"},
			next:   staged,
			digest: "9a48e5a81da3ef59c608c4472bbd6eb7d5596cab8fa9dc39bd039458513bd403"},
		{name: "unlocked hotfix", fixture: "zincati-rpm-ostree-staged.json",
			replace:  []string{stagedFixtureBootedUnlocked, strings.Replace(stagedFixtureBootedUnlocked, `"none"`, `"hotfix"`, 1)},
			checksum: zincatiStagedBooted, codes: []string{"ostree.staged:info", "ostree.unlocked:high"}, state: "degraded",
			ref: map[string]any{"unlocked": "hotfix"}, next: staged},
		{name: "live-applied", fixture: "zincati-rpm-ostree-staged.json",
			replace: []string{stagedFixtureBootedUnlocked, strings.Replace(stagedFixtureBootedUnlocked, `"unlocked" : "none",`, `"unlocked" : "none",
      "live-replaced" : "`+zincatiStaged+`",`, 1)},
			checksum: zincatiStagedBooted, codes: []string{"ostree.live_applied:medium", "ostree.staged:info"}, state: "degraded",
			ref: map[string]any{"live_replaced": zincatiStaged}, next: staged},
	} {
		m, _ := bootedMachine(t, "fedora-coreos", "")
		res := measure(t, m.config(printsJSON(t, zincati(t, tc.fixture, tc.replace...)), tc.extra...))
		if !wantCodes(t, tc.name, res, tc.codes...) {
			continue
		}
		if got := plugintest.DefaultState(res.Findings); got != tc.state {
			t.Errorf("Test %d (%s): state %s, want %s", i, tc.name, got, tc.state)
		}
		if dep := checkDigest(t, res); dep["checksum"] != tc.checksum {
			t.Errorf("Test %d (%s): deployment %v", i, tc.name, dep)
		}
		ref := checkReference(t, res)
		for k, v := range tc.ref {
			if !reflect.DeepEqual(ref[k], v) {
				t.Errorf("Test %d (%s): reference %s = %v, want %v", i, tc.name, k, ref[k], v)
			}
		}
		checkNext(t, tc.name, res, tc.next)
		if got := str(t, res, "deployment_reference"); tc.digest != "" && got != tc.digest {
			t.Errorf("Test %d (%s): deployment_reference %s, the documented example says %s", i, tc.name, got, tc.digest)
		}
	}
}

// checkNext verifies next_deployment's members and its own reference.
func checkNext(t *testing.T, name string, res *sdktest.Result, want map[string]any) {
	t.Helper()
	raw, ok := res.Measurements["next_deployment"]
	if want == nil {
		if ok {
			t.Errorf("%s: next_deployment %s, want none", name, raw)
		}
		return
	}
	var next map[string]any
	must(t, res.Decode("next_deployment", &next))
	for k, v := range want {
		if next[k] != v {
			t.Errorf("%s: next_deployment %s = %v, want %v", name, k, next[k], v)
		}
	}
	if got := refDigest(t, next["reference"]); got != next["deployment_reference"] {
		t.Errorf("%s: next deployment_reference %v is not sha256(JCS(reference)) = %s", name, next["deployment_reference"], got)
	}
}

// TestExpectedDeploymentsStaged: a staged update is announced before the
// reboot, as expected or not.
func TestExpectedDeploymentsStaged(t *testing.T) {
	t.Parallel()
	m, _ := bootedMachine(t, "fedora-coreos", "")
	rpm := printsJSON(t, zincati(t, "zincati-rpm-ostree-staged.json"))
	first := measure(t, m.config(rpm))
	booted := str(t, first, "deployment_reference")
	var next map[string]any
	must(t, first.Decode("next_deployment", &next))
	staged := next["deployment_reference"].(string)
	for i, tc := range []struct {
		expected []string
		codes    []string
		state    string
	}{
		{[]string{booted, staged}, []string{"ostree.staged:info"}, "attested"},
		{[]string{strings.ToUpper(booted)}, []string{"ostree.staged_unexpected:high"}, "degraded"},
		{[]string{staged}, []string{"ostree.staged:info", "ostree.unexpected_deployment:high"}, "degraded"},
	} {
		res := measure(t, m.config(rpm, "expected_deployments", tc.expected))
		if wantCodes(t, "expected", res, tc.codes...) && plugintest.DefaultState(res.Findings) != tc.state {
			t.Errorf("Test %d: state %s, want %s", i, plugintest.DefaultState(res.Findings), tc.state)
		}
	}
}

func str(t *testing.T, res *sdktest.Result, key string) string {
	t.Helper()
	var s string
	must(t, res.Decode(key, &s))
	return s
}
