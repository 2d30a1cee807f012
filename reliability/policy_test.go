package reliability

// Bad policies against the real daemon binary: every case in
// testdata/badpolicies is refused at start (exit 3, the message names the
// key, no audit log written, no plugin left) and, through SIGHUP, refused
// by a running daemon that keeps its policy and its plugins, says so in a
// core.policy_reload finding and in the audit log, and takes a good policy
// again afterwards.
//
// A case file is a YAML fragment with directives in its leading comments:
//
//	# <what is wrong, one line>
//	# expect: <text the refusal must contain; repeatable>
//	# mode: merge | append | whole   (default merge: the fragment's top-level
//	#       keys replace the development policy's; append: added as is;
//	#       whole: the fragment is the policy)
//	# setup: file NAME MODE SIZE | text NAME MODE WORDS... | dir NAME | fifo NAME
//	#       (made in the case's own folder, @CASE@)
//	# policy: missing | directory | fifo | big | mode 0666   (the policy file itself)
//	# refused-by: plugin   (the plugin refuses its config: plugins start first)
//	# only: start | reload
//
// Placeholders: @CASE@, @RUN@, @ROOT@, @PLUGIN_DIR@, @DAEMON@, @POLICY@.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/internal/daemontest"
)

// badPolicy is one case of testdata/badpolicies.
type badPolicy struct {
	name     string // file name without .yaml
	why      string
	expect   []string
	mode     string
	setup    [][]string
	policy   string
	byPlugin bool
	only     string
	body     string
}

func loadBadPolicies(t *testing.T) []badPolicy {
	t.Helper()
	files, err := filepath.Glob("testdata/badpolicies/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	var out []badPolicy
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		bp := badPolicy{name: strings.TrimSuffix(filepath.Base(f), ".yaml"), mode: "merge"}
		var body []string
		for i, line := range strings.Split(string(raw), "\n") {
			directive := func(name string) (string, bool) {
				return strings.CutPrefix(line, "# "+name+":")
			}
			if v, ok := directive("expect"); ok {
				bp.expect = append(bp.expect, strings.TrimSpace(v))
			} else if v, ok := directive("mode"); ok {
				bp.mode = strings.TrimSpace(v)
			} else if v, ok := directive("setup"); ok {
				bp.setup = append(bp.setup, strings.Fields(v))
			} else if v, ok := directive("policy"); ok {
				bp.policy = strings.TrimSpace(v)
			} else if v, ok := directive("refused-by"); ok {
				bp.byPlugin = strings.TrimSpace(v) == "plugin"
			} else if v, ok := directive("only"); ok {
				bp.only = strings.TrimSpace(v)
			} else {
				if i == 0 {
					bp.why = strings.TrimSpace(strings.TrimPrefix(line, "#"))
				}
				body = append(body, line)
			}
		}
		bp.body = strings.Join(body, "\n")
		if len(bp.expect) == 0 || bp.why == "" {
			t.Fatalf("%s: a case needs a description and at least one '# expect:'", f)
		}
		switch bp.mode {
		case "merge", "append", "whole":
		default:
			t.Fatalf("%s: unknown mode %q", f, bp.mode)
		}
		out = append(out, bp)
	}
	if len(out) < 30 {
		t.Fatalf("%d bad policies in testdata/badpolicies, want at least 30", len(out))
	}
	return out
}

var topKeyRE = regexp.MustCompile(`^([A-Za-z0-9_][A-Za-z0-9_.-]*)\s*:`)

// composePolicy applies a fragment to the base policy (see the file
// comment for the modes).
func composePolicy(base, frag, mode string) string {
	switch mode {
	case "whole":
		return frag
	case "append":
		return base + "\n" + frag + "\n"
	}
	replace := map[string]bool{}
	for _, line := range strings.Split(frag, "\n") {
		if m := topKeyRE.FindStringSubmatch(line); m != nil {
			replace[m[1]] = true
		}
	}
	var kept []string
	skipping := false
	for _, line := range strings.Split(base, "\n") {
		if m := topKeyRE.FindStringSubmatch(line); m != nil {
			skipping = replace[m[1]]
		}
		if !skipping {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n") + "\n" + frag + "\n"
}

// badPolicyCase is a case made ready in an Env.
type badPolicyCase struct {
	badPolicy
	dir    string   // @CASE@
	fifos  []string // FIFOs the daemon might block on
	text   string   // the policy file's content
	expect []string // rendered
}

// prepare makes the case's folder and files and returns the rendered case.
func (bp badPolicy) prepare(t *testing.T, env *daemontest.Env, base string) *badPolicyCase {
	t.Helper()
	c := &badPolicyCase{badPolicy: bp, dir: filepath.Join(env.Dir, "cases", bp.name)}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	render := func(s string) string {
		return strings.NewReplacer("@CASE@", c.dir, "@POLICY@", env.PolicyPath).Replace(env.Render(s))
	}
	for _, s := range bp.setup {
		path := filepath.Join(c.dir, s[1])
		var err error
		switch s[0] {
		case "file", "text":
			mode, perr := strconv.ParseUint(s[2], 8, 32)
			if perr != nil {
				t.Fatalf("%s: setup %v: %v", bp.name, s, perr)
			}
			var data []byte
			if s[0] == "file" {
				n, _ := strconv.Atoi(s[3])
				data = bytes.Repeat([]byte("k"), n)
			} else {
				data = []byte(strings.Join(s[3:], " ") + "\n")
			}
			if err = os.WriteFile(path, data, os.FileMode(mode)); err == nil {
				err = os.Chmod(path, os.FileMode(mode))
			}
		case "dir":
			err = os.Mkdir(path, 0o700)
		case "fifo":
			err = syscall.Mkfifo(path, 0o600)
			c.fifos = append(c.fifos, path)
		default:
			t.Fatalf("%s: unknown setup %v", bp.name, s)
		}
		if err != nil {
			t.Fatalf("%s: setup %v: %v", bp.name, s, err)
		}
	}
	c.text = composePolicy(base, render(bp.body), bp.mode)
	for _, e := range bp.expect {
		c.expect = append(c.expect, render(e))
	}
	return c
}

// install writes the case's policy file (or what stands in its place).
func (c *badPolicyCase) install(t *testing.T, env *daemontest.Env) {
	t.Helper()
	if err := os.RemoveAll(env.PolicyPath); err != nil {
		t.Fatal(err)
	}
	text := c.text
	if c.policy == "big" {
		text += "\n# " + strings.Repeat("x", 1<<20) + "\n"
	}
	env.WritePolicy(text)
	var err error
	switch c.policy {
	case "", "big":
	case "missing":
		err = os.Remove(env.PolicyPath)
	case "directory":
		if err = os.Remove(env.PolicyPath); err == nil {
			err = os.Mkdir(env.PolicyPath, 0o700)
		}
	case "fifo":
		if err = os.Remove(env.PolicyPath); err == nil {
			err = syscall.Mkfifo(env.PolicyPath, 0o600)
		}
		c.fifos = append(c.fifos, env.PolicyPath)
	case "mode 0666":
		err = os.Chmod(env.PolicyPath, 0o666)
	default:
		t.Fatalf("%s: unknown policy directive %q", c.name, c.policy)
	}
	if err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
}

// unblock feeds every FIFO of the case once, so that a daemon stuck
// opening one goes on.
func (c *badPolicyCase) unblock() {
	for _, f := range c.fifos {
		w, err := os.OpenFile(f, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			continue // nobody is reading
		}
		_, _ = w.WriteString("0123456789abcdef0123456789abcdef\n")
		w.Close()
	}
}

// missing returns the expected texts absent from msg.
func (c *badPolicyCase) missing(msg string) []string {
	var out []string
	for _, e := range c.expect {
		if !strings.Contains(msg, e) {
			out = append(out, e)
		}
	}
	return out
}

// hangLimit is how long a refusal may take before the test calls it a
// hang: a parse or file error comes at once; a plugin refusing its
// configuration needs the plugins started.
func (c *badPolicyCase) hangLimit() time.Duration {
	if c.byPlugin {
		return 90 * time.Second
	}
	return 10 * time.Second
}

// TestBadPoliciesAtStart starts the real daemon on every bad policy: it
// must exit with code 3 naming the key, write no audit log, and leave no
// plugin process behind.
func TestBadPoliciesAtStart(t *testing.T) {
	t.Parallel()
	cases := loadBadPolicies(t)
	env := daemontest.New(t, daemontest.Options{})
	base := env.DevelopmentPolicy()
	tried, refusedOK := 0, 0
	var slowest time.Duration
	for i, bp := range cases {
		if bp.only == "reload" {
			continue
		}
		tried++
		c := bp.prepare(t, env, base)
		c.install(t, env)
		start := time.Now()
		p := env.StartNoWait()
		code, exited := -1, false
		select {
		case <-p.Done():
			exited = true
			code = p.Wait(time.Second)
		case <-time.After(c.hangLimit()):
		}
		took := time.Since(start)
		slowest = max(slowest, took)
		good := false
		switch {
		case !exited:
			c.unblock()
			p.Cmd.Process.Kill()
			<-p.Done()
			t.Errorf("Test %d (%s: %s): the daemon neither started nor refused the policy within %s: it hangs; log:\n%s",
				i, c.name, c.why, c.hangLimit(), badTail(p.Stderr(), 2000))
		case code != 3:
			t.Errorf("Test %d (%s: %s): exit code %d, want 3; log:\n%s", i, c.name, c.why, code, badTail(p.Stderr(), 2000))
		default:
			if miss := c.missing(p.Stderr()); len(miss) > 0 {
				t.Errorf("Test %d (%s: %s): the refusal does not say %q:\n%s", i, c.name, c.why, miss, badTail(p.Stderr(), 2000))
			} else {
				good = true
			}
		}
		// Nothing written: no audit log anywhere under the test's folder.
		_ = filepath.WalkDir(env.Dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".jsonl") {
				t.Errorf("Test %d (%s): a refused daemon wrote %s", i, c.name, path)
				good = false
				_ = os.Remove(path)
			}
			return nil
		})
		if left := daemontest.WaitNoProcessesUnder(env.PluginDir, 10*time.Second); len(left) > 0 {
			t.Errorf("Test %d (%s): plugins outlive the refused daemon:\n%s", i, c.name, daemontest.Describe(left))
			good = false
		}
		if good {
			refusedOK++
		}
		if testing.Verbose() {
			t.Logf("%-45s exit %d in %s", c.name, code, took.Round(time.Millisecond))
		}
	}
	report(t, "%d of %d bad policies refused at start as they must be (exit 3, key named, nothing written, no plugin left); slowest %s",
		refusedOK, tried, slowest.Round(time.Millisecond))
}

// TestBadPoliciesOnReload sends every bad policy to a running daemon with
// SIGHUP: each is refused (policy_reload accepted=false naming the key),
// the running policy stays (same attestation_policy_sha256, and with
// resident_plugins the same plugin processes), the next bundle is degraded by a core.policy_reload finding
// naming the key; a good policy afterwards is taken and the daemon is
// attested again.
func TestBadPoliciesOnReload(t *testing.T) {
	t.Parallel()
	cases := loadBadPolicies(t)
	env := daemontest.New(t, daemontest.Options{})
	// Resident plugins, so that "the plugins keep running" means the same
	// processes before and after each refused reload.
	dev := env.DevelopmentPolicy()
	good := strings.Replace(dev, "resident_plugins: false", "resident_plugins: true", 1)
	if good == dev {
		t.Fatal("cannot find resident_plugins: false in the development policy")
	}
	env.WritePolicy(good)
	p := env.Start()
	before := env.State()
	if before == "failed" {
		t.Fatalf("state failed with the development policy; log:\n%s", p.Stderr())
	}
	goodSHA := env.PolicySHA256()
	key, err := os.ReadFile(env.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	plugins := daemontest.ProcessesUnder(env.PluginDir)
	if len(plugins) != len(builtin.Names()) {
		t.Fatalf("%d plugin processes, want %d:\n%s", len(plugins), len(builtin.Names()), daemontest.Describe(plugins))
	}
	reloads := func(accepted bool) func([]daemontest.AuditRecord) int {
		return func(recs []daemontest.AuditRecord) int {
			return daemontest.CountAudit(recs, "policy_reload", func(d map[string]any) bool { return d["accepted"] == accepted })
		}
	}
	refused := reloads(false)(env.AuditRecords())
	tried, keptOK := 0, 0
	for i, bp := range cases {
		if bp.only == "start" {
			continue
		}
		tried++
		caseOK := true
		errorf := func(format string, args ...any) {
			t.Helper()
			caseOK = false
			t.Errorf(format, args...)
		}
		c := bp.prepare(t, env, good)
		c.install(t, env)
		p.Signal(syscall.SIGHUP)

		// The refusal is audited, naming the key.
		deadline := time.Now().Add(c.hangLimit())
		var recs []daemontest.AuditRecord
		hung := false
		for {
			recs = env.AuditRecords()
			if reloads(false)(recs) > refused || reloads(true)(recs) > 0 {
				break
			}
			if time.Now().After(deadline) {
				if !hung && len(c.fifos) > 0 {
					errorf("Test %d (%s: %s): the reload hangs on a FIFO (no policy_reload record after %s; the daemon's signal loop is stuck until someone writes to it)",
						i, c.name, c.why, c.hangLimit())
					hung = true
					deadline = time.Now().Add(c.hangLimit())
					continue
				}
				t.Fatalf("Test %d (%s): no policy_reload record after %s; log:\n%s", i, c.name, c.hangLimit(), badTail(p.Stderr(), 3000))
			}
			if hung {
				c.unblock() // feed the FIFO until the daemon gets past it
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := reloads(true)(recs); n > 0 {
			t.Fatalf("Test %d (%s: %s): the daemon ACCEPTED the bad policy; log:\n%s", i, c.name, c.why, badTail(p.Stderr(), 3000))
		}
		refused++
		var last daemontest.AuditRecord
		for _, r := range recs {
			if r.Type == "policy_reload" {
				last = r
			}
		}
		msg, _ := last.Data["error"].(string)
		if miss := c.missing(msg); len(miss) > 0 {
			errorf("Test %d (%s: %s): the audited refusal does not say %q: %s", i, c.name, c.why, miss, msg)
		}

		// The next attestation: degraded by core.policy_reload, under the
		// old policy.
		code, body, err := env.Do("POST", "/api/v1/refresh", env.Token)
		if err != nil || code != 200 {
			t.Fatalf("Test %d (%s): refresh after the refused reload: %d %v %s", i, c.name, code, err, body)
		}
		var resp struct {
			State  string          `json:"state"`
			Bundle json.RawMessage `json:"bundle"`
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			t.Fatal(err)
		}
		var b struct {
			PolicySHA string `json:"attestation_policy_sha256"`
			Failures  []struct {
				Code, Message string
			} `json:"failures"`
		}
		if err := json.Unmarshal(resp.Bundle, &b); err != nil {
			t.Fatal(err)
		}
		if err := bundle.Verify(resp.Bundle, key); err != nil {
			errorf("Test %d (%s): bundle after the refused reload does not verify: %v", i, c.name, err)
		}
		if resp.State != "degraded" {
			errorf("Test %d (%s): state %s after a refused reload, want degraded", i, c.name, resp.State)
		}
		if b.PolicySHA != goodSHA {
			errorf("Test %d (%s): attestation_policy_sha256 %s, want the running policy's %s", i, c.name, b.PolicySHA, goodSHA)
		}
		found := false
		for _, f := range b.Failures {
			if f.Code == "core.policy_reload" {
				found = true
				if miss := c.missing(f.Message); len(miss) > 0 {
					errorf("Test %d (%s): the core.policy_reload finding does not say %q: %s", i, c.name, miss, f.Message)
				}
			}
		}
		if !found {
			errorf("Test %d (%s): no core.policy_reload finding after a refused reload: %+v", i, c.name, b.Failures)
		}
		// The plugins that ran before still run: the same processes.
		for _, pid := range plugins {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				t.Fatalf("Test %d (%s): plugin process %d is gone after a refused reload", i, c.name, pid)
			}
		}
		if !p.Alive() {
			t.Fatalf("Test %d (%s): the daemon died; log:\n%s", i, c.name, p.Stderr())
		}
		if caseOK {
			keptOK++
		}
		// Back to a regular policy file for the next case (not a reload).
		if err := os.RemoveAll(env.PolicyPath); err != nil {
			t.Fatal(err)
		}
		env.WritePolicy(good)
	}

	// Only the original plugins run once the refused hosts are closed.
	deadline := time.Now().Add(20 * time.Second)
	for {
		now := daemontest.ProcessesUnder(env.PluginDir)
		if fmt.Sprint(now) == fmt.Sprint(plugins) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes %v after the refused reloads, want the original %v:\n%s", now, plugins, daemontest.Describe(now))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A good policy is taken again.
	env.WritePolicy(good)
	p.Signal(syscall.SIGHUP)
	env.WaitAudit(p, 60*time.Second, "accepted policy_reload", func(recs []daemontest.AuditRecord) bool { return reloads(true)(recs) == 1 })
	p.WaitState(60*time.Second, before)
	p.Stop()
	if _, err := audit.VerifyFile(env.AuditPath); err != nil {
		t.Errorf("audit log after the reloads: %v", err)
	}
	report(t, "%d of %d bad policies refused through SIGHUP as they must be (running policy, plugins and signature kept, core.policy_reload raised); the good policy was taken back",
		keptOK, tried)
}

// badTail returns the end of a long log.
func badTail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
