// Package prometheus holds the Prometheus alerting rules, their promtool
// unit tests and the scrape and federation examples for runtime-attestor
// (see README.md). Its Go test runs `promtool test rules`, checks the
// configurations and that every metric the rules name is one the real
// /metrics endpoint serves.
package prometheus

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api"
	"github.com/secure-ai/runtime-attestor/core/api/apitest"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
)

func promtool(t *testing.T, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus; make deps installs it): the rules cannot be tested")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	promtool(t, "check", "rules", "runtime-attestor.rules.yml")
	promtool(t, "test", "rules", "runtime-attestor.rules.test.yml")
}

func TestConfigs(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"prometheus.yml", "federation.yml"} {
		promtool(t, "check", "config", f)
	}
}

// TestRulesNameRealMetrics: every runtime_attestor_* metric in the rules is
// served by the API's /metrics, so a renamed metric cannot silence an alert.
func TestRulesNameRealMetrics(t *testing.T) {
	t.Parallel()
	srv := api.New(api.Options{Attestor: apitest.New(engine.Snapshot{
		State: state.Attested, LastAttested: time.Unix(1, 0),
		Plugins: []engine.PluginStatus{{Name: "tpm", FaultCount: 1}},
	})})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (runtime_attestor_[a-z_]+) `).FindAllStringSubmatch(string(body), -1) {
		served[m[1]] = true
	}
	rules, err := os.ReadFile("runtime-attestor.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	named := regexp.MustCompile(`runtime_attestor_[a-z_]+`).FindAllString(string(rules), -1)
	if len(named) < 5 {
		t.Fatalf("the rules name only %v", named)
	}
	for _, n := range named {
		if !served[n] {
			t.Errorf("the rules use %s, which /metrics does not serve (it serves %v)", n, served)
		}
	}
}
