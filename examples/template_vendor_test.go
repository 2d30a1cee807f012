package examples

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// TestTemplateTestsInVendorModule: the template folder copied into a
// vendor's own module, tests and README included, passes `go test` there
// offline: sdktest.Start
// builds the vendor's plugin inside the vendor's module and runs it in the
// daemon's sandbox, with no TestMain and nothing of the daemon imported.
func TestTemplateTestsInVendorModule(t *testing.T) {
	t.Parallel()
	mod := testbin.VendorModule(t, "./examples/template-check", "main.go", "check.go", "check_test.go", "README.md")
	cmd := exec.Command("go", "test", "-count=1", "-v", ".")
	cmd.Dir = mod
	cmd.Env = testbin.Offline()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("go test in the vendor's module: %v\n%s", err, out.String())
	}
	for _, name := range []string{"TestSandboxAsShipped", "TestMeasure", "TestConfigure"} {
		if !strings.Contains(out.String(), "--- PASS: "+name) {
			t.Errorf("%s did not pass in the vendor's module:\n%s", name, out.String())
		}
	}
}
