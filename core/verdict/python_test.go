package verdict

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/core/state"
)

// TestDeploymentPython: the Python computation of the pinned PCR value in
// docs/deployment.md gives what the daemon extends.
func TestDeploymentPython(t *testing.T) {
	t.Parallel()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deployment.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script string
	for _, m := range regexp.MustCompile("(?s)```python\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.Contains(m[1], "measurements_sha256") {
			script = m[1]
		}
	}
	const placeholder = "measurements = {...}"
	if !strings.Contains(script, placeholder) {
		t.Fatalf("docs/deployment.md has no python block with %q", placeholder)
	}
	script = "import sys\n" + strings.Replace(script, placeholder, "measurements = json.loads(sys.argv[1])", 1) + "print(pcr)\n"
	v, m, err := Of(testBundle(t, 5, state.Attested))
	if err != nil {
		t.Fatal(err)
	}
	mj, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", script, string(mj)).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	d, err := v.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if want := hex.EncodeToString(Extend(make([]byte, 32), d)); strings.TrimSpace(string(out)) != want {
		t.Errorf("docs/deployment.md's Python gives %s, the daemon extends to %s", out, want)
	}
}
