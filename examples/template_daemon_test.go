// Package examples holds the tests that run the example plugins as an
// operator installs them: built, dropped into a running daemon's plugin
// folder, configured with the policy lines their READMEs document.
package examples

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// attestation is the part of GET /api/v1/attest these tests read.
type attestation struct {
	State  string `json:"state"`
	Bundle struct {
		Failures []struct{ Code, Message, Subject, Plugin string } `json:"failures"`
		Checks   map[string]struct {
			Measurements json.RawMessage `json:"measurements"`
			Findings     []struct{ Code, Message string }
		} `json:"checks"`
	} `json:"bundle"`
}

// TestTemplateInDaemon: the template plugin, built and dropped into a
// running daemon's plugin folder with the policy lines its README
// documents (read from the README, so the document cannot drift from what
// works), is attested; without the README's sandbox grant the daemon's
// answer names the missing grant and the policy line that adds it.
func TestTemplateInDaemon(t *testing.T) {
	t.Parallel()
	root := testbin.Root(t)
	doc := readmePolicy(t, filepath.Join(root, "examples", "template-check", "README.md"))
	paths, _ := doc["config"].(map[string]any)["paths"].([]any)
	if len(paths) == 0 || doc["sandbox"] == nil {
		t.Fatalf("the README's policy lines have no config.paths or no sandbox: %v", doc)
	}
	for _, p := range paths {
		if _, err := os.Stat(p.(string)); err != nil {
			t.Skipf("this system lacks the README's file: %v", err)
		}
	}
	bin := testbin.Build(t, "./examples/template-check", "attestor-check-template")

	t.Run("documented", func(t *testing.T) {
		t.Parallel()
		a := runTemplate(t, bin, doc)
		c, ok := a.Bundle.Checks["template"]
		var m struct{ Digests map[string]string }
		if !ok || json.Unmarshal(c.Measurements, &m) != nil || len(c.Findings) != 0 {
			t.Fatalf("checks.template = %s %+v, failures %+v", c.Measurements, c.Findings, a.Bundle.Failures)
		}
		for _, p := range paths {
			if len(m.Digests[p.(string)]) != 64 {
				t.Errorf("no digest of %s: %s", p, c.Measurements)
			}
		}
		if a.State != "attested" || len(a.Bundle.Failures) != 0 {
			t.Errorf("state %s, failures %+v; want attested", a.State, a.Bundle.Failures)
		}
	})
	t.Run("without_the_grant", func(t *testing.T) {
		t.Parallel()
		noGrant := map[string]any{}
		for k, v := range doc {
			if k != "sandbox" {
				noGrant[k] = v
			}
		}
		a := runTemplate(t, bin, noGrant)
		var said []string
		for _, f := range a.Bundle.Failures {
			said = append(said, f.Code+": "+f.Message)
		}
		for _, p := range paths {
			line := `plugins.template.sandbox.read_only: ["` + p.(string) + `"]`
			if !strings.Contains(strings.Join(said, "\n"), line) {
				t.Errorf("the daemon's failures do not name the grant %s:\n%s", line, strings.Join(said, "\n"))
			}
		}
		if a.State == "attested" {
			t.Errorf("state attested without the grant")
		}
	})
}

// readmePolicy returns plugins.template from the first yaml block of the
// README's Configuration section, pinned: its sha256 placeholder is left out
// (the test pins the real digest).
func readmePolicy(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Configuration\n")
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindStringSubmatch(section)
	if !ok || m == nil {
		t.Fatalf("%s has no yaml block under ## Configuration", path)
	}
	var doc struct {
		Plugins map[string]map[string]any `yaml:"plugins"`
	}
	if err := yaml.Unmarshal([]byte(m[1]), &doc); err != nil {
		t.Fatalf("the README's policy lines: %v\n%s", err, m[1])
	}
	tmpl := doc.Plugins["template"]
	if tmpl == nil {
		t.Fatalf("the README's policy lines name no plugins.template:\n%s", m[1])
	}
	delete(tmpl, "sha256")
	return tmpl
}

// runTemplate installs bin as a third-party plugin of a daemon whose only
// plugin it is, configured with lines (plugins.template) and pinned, and
// returns the daemon's first attestation.
func runTemplate(t *testing.T, bin string, lines map[string]any) attestation {
	t.Helper()
	e := daemontest.New(t, daemontest.Options{Plugins: []string{}})
	installed := testbin.Install(t, bin, e.PluginDir, "attestor-check-template")
	data, err := os.ReadFile(installed)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	e.EditPolicy(func(doc map[string]any) {
		for _, p := range builtin.Names() {
			daemontest.SetPolicyKey(doc, map[string]any{"enabled": false}, "plugins", p)
		}
		daemontest.SetPolicyKey(doc, map[string]any{}, "service_binaries")
		daemontest.SetPolicyKey(doc, []any{}, "policy_files")
		tmpl := map[string]any{"sha256": hex.EncodeToString(sum[:])}
		for k, v := range lines {
			tmpl[k] = v
		}
		daemontest.SetPolicyKey(doc, tmpl, "plugins", "template")
	})
	p := e.Start()
	defer p.Stop()
	code, body := e.Get("/api/v1/attest")
	var a attestation
	if err := json.Unmarshal(body, &a); code != 200 || err != nil {
		t.Fatalf("GET /api/v1/attest: %d %v\n%s\nlog:\n%s", code, err, body, p.Stderr())
	}
	return a
}
