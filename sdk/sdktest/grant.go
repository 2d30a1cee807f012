package sdktest

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/secure-ai/runtime-attestor/sdk"
)

// yamlBlock is a fenced yaml code block of a Markdown file.
var yamlBlock = regexp.MustCompile("(?ms)^```ya?ml\n(.*?)^```")

// DocumentedGrant returns plugins.<name>.sandbox from the first yaml code
// block of the Markdown file at path (the plugin's README) that sets it, so
// that a test runs the plugin with exactly the policy lines its README
// tells operators to write, and the README cannot drift from what works:
//
//	h := sdktest.Start(t, sdktest.Options{Grant: sdktest.DocumentedGrant(t, "README.md", "acme_fw")})
//
// A block that is not YAML, a sandbox key the policy does not know or a
// README with no such block fails the test.
func DocumentedGrant(t testing.TB, path, name string) sdk.Sandbox {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	for _, m := range yamlBlock.FindAllSubmatch(raw, -1) {
		var doc struct {
			Plugins map[string]struct {
				Sandbox map[string]any `yaml:"sandbox"`
			} `yaml:"plugins"`
		}
		if err := yaml.Unmarshal(m[1], &doc); err != nil {
			t.Fatalf("sdktest: a yaml block of %s: %v\n%s", path, err, m[1])
		}
		sb := doc.Plugins[name].Sandbox
		if sb == nil {
			continue
		}
		// The policy's keys are sdk.Sandbox's JSON names.
		j, err := json.Marshal(sb)
		if err != nil {
			t.Fatalf("sdktest: %s: plugins.%s.sandbox: %v", path, name, err)
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.DisallowUnknownFields()
		var out sdk.Sandbox
		if err := dec.Decode(&out); err != nil {
			t.Fatalf("sdktest: %s: plugins.%s.sandbox: %v", path, name, err)
		}
		return out
	}
	t.Fatalf("sdktest: %s has no yaml block with plugins.%s.sandbox", path, name)
	return sdk.Sandbox{}
}
