package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/audit"
	"github.com/secure-ai/runtime-attestor/core/bundle"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/internal/testbin"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
)

func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }

// echoPlugin is one copy of testplugins/echo: installed as
// attestor-check-<name>, it answers config's measurements and findings.
type echoPlugin struct {
	name         string
	measurements map[string]any
	findings     []string
}

type fixture struct {
	t      *testing.T
	dir    string
	pol    *policy.Policy
	key    []byte
	audit  *audit.Log
	engine *Engine
}

// newFixture runs an engine over real echo plugin processes.
func newFixture(t *testing.T, plugins []echoPlugin, tweak func(*policy.Policy)) *fixture {
	t.Helper()
	dir := t.TempDir()
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.Mkdir(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := testbin.Build(t, "./testplugins/echo", "attestor-check-echo")
	pol := policy.Default()
	pol.PluginDir = pluginDir
	pol.HMACKeyPath = filepath.Join(dir, "hmac.key")
	pol.AuditLogPath = filepath.Join(dir, "logs", "audit.jsonl")
	pol.RefreshInterval = time.Hour
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pol.HMACKeyPath, key, 0o600); err != nil {
		t.Fatal(err)
	}
	// The default signing key, made as the unit's keygen helper does.
	pol.SigningKeyPath = filepath.Join(dir, "signing.key")
	if _, err := identity.WriteNew(identity.KeyEd25519, pol.SigningKeyPath, pol.SigningKeyPath+".pub"); err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(pol)
	}
	var specs []pluginhost.Spec
	for _, p := range plugins {
		testbin.Install(t, bin, pluginDir, "attestor-check-"+p.name)
		cfg, err := json.Marshal(map[string]any{"measurements": p.measurements, "findings": p.findings})
		if err != nil {
			t.Fatal(err)
		}
		specs = append(specs, pluginhost.Spec{Name: p.name, Enabled: true, ConfigJSON: cfg})
	}
	h := pluginhost.New(pluginhost.Options{Dir: pluginDir, Plugins: specs, Logger: hclog.NewNullLogger()})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	log, err := audit.Open(pol.AuditLogPath, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Options{Policy: pol, PolicySHA256: "ab", Host: h, Audit: log, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.Close()
		_ = log.Close()
	})
	return &fixture{t: t, dir: dir, pol: pol, key: key, audit: log, engine: e}
}

func (f *fixture) attest() (Snapshot, *bundle.Bundle) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := f.engine.Attest(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	var b bundle.Bundle
	if err := json.Unmarshal(s.Bundle, &b); err != nil {
		f.t.Fatalf("bundle: %v", err)
	}
	return s, &b
}

func codes(b *bundle.Bundle) map[string]sdk.Severity {
	out := map[string]sdk.Severity{}
	for _, f := range b.Failures {
		out[f.Code] = f.Severity
	}
	return out
}

// TestBundleFromPlugins: built-in owners fill the bundle's fields, a
// third-party plugin cannot, the weights decide the state, the bundle is
// signed and verifies, and the audit log holds the attestation.
func TestBundleFromPlugins(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{
		{name: "tpm", measurements: map[string]any{"tpm_available": true, "tpm_quote_verified": true, "boot_measurements.pcrs": map[string]string{"0": "aa"}}},
		{name: "kernel", measurements: map[string]any{"kernel_cmdline": "quiet", "kernel_lockdown": "integrity"}},
		// A third-party plugin claiming the TPM's fields only shows under checks.
		{name: "vendor", measurements: map[string]any{"tpm_quote_verified": false, "kernel_cmdline": "evil"}, findings: []string{"medium"}},
	}, nil)
	s, b := f.attest()
	if err := bundle.Verify(s.Bundle, f.key); err != nil {
		t.Fatalf("bundle does not verify: %v", err)
	}
	if b.TPMAvailable == nil || !*b.TPMAvailable || b.TPMQuoteVerified == nil || !*b.TPMQuoteVerified {
		t.Errorf("tpm fields = %v %v, want true true (a third-party plugin must not override them)", b.TPMAvailable, b.TPMQuoteVerified)
	}
	if b.KernelCmdline == nil || *b.KernelCmdline != "quiet" || b.BootMeasurements.PCRs["0"] != "aa" {
		t.Errorf("owned fields not filled: cmdline %v pcrs %v", b.KernelCmdline, b.BootMeasurements.PCRs)
	}
	if b.DeploymentDigest != nil || b.PolicyDigest != nil {
		t.Errorf("fields nobody measured are not null: %v %v", b.DeploymentDigest, b.PolicyDigest)
	}
	var vendor map[string]any
	if err := json.Unmarshal(b.Checks["vendor"].Measurements, &vendor); err != nil || vendor["kernel_cmdline"] != "evil" {
		t.Errorf("checks.vendor.measurements = %s (%v)", b.Checks["vendor"].Measurements, err)
	}
	if b.State != state.Degraded || s.State != state.Degraded || b.Score != 5 {
		t.Errorf("state %s score %d, want degraded 5 (one medium finding)", b.State, b.Score)
	}
	if got := codes(b); got["vendor.medium"] != sdk.SeverityMedium || len(got) != 1 {
		t.Errorf("failures = %v", b.Failures)
	}
	if s.AttestCount != 1 || s.DegradeCount != 1 || s.FailCount != 0 || s.LastAttested.IsZero() {
		t.Errorf("counters = %+v", s)
	}
	rep, err := audit.VerifyFile(f.pol.AuditLogPath)
	if err != nil || rep.Records < 2 {
		t.Fatalf("audit log: %+v, %v (want the attestation and the state change)", rep, err)
	}
	if s.AuditLastSeq != rep.LastSeq || s.AuditLastHash != rep.LastHash {
		t.Errorf("snapshot audit head %d %s, want the log's %d %s", s.AuditLastSeq, s.AuditLastHash, rep.LastSeq, rep.LastHash)
	}
}

// TestWrongTypeFromOwner: an owner plugin sending the wrong JSON type is a
// protocol finding, and the field stays null.
func TestWrongTypeFromOwner(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{{name: "tpm", measurements: map[string]any{"tpm_available": "yes"}}}, nil)
	_, b := f.attest()
	if b.TPMAvailable != nil {
		t.Errorf("tpm_available = %v, want null", *b.TPMAvailable)
	}
	if _, ok := codes(b)["core.plugin_protocol"]; !ok || b.State == state.Attested {
		t.Errorf("state %s failures %v, want a core.plugin_protocol finding", b.State, b.Failures)
	}
}

// TestUnsignedIsNeverAttested: without a usable key the bundle is unsigned,
// a finding says why and the state cannot be attested — even when an
// operator weighs the finding down to info.
func TestUnsignedIsNeverAttested(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		name        string
		key         []byte // nil: no file
		weighDown   bool
		wantFinding bool
	}{
		{"missing", nil, false, true},
		{"short", []byte("0123456789abcdef"), false, true},
		{"short, finding weighed down to info", []byte("0123456789abcdef"), true, false},
	} {
		f := newFixture(t, []echoPlugin{{name: "vendor"}}, func(p *policy.Policy) {
			if tc.weighDown {
				p.SeverityOverrides = map[string]sdk.Severity{"core.hmac_key": sdk.SeverityInfo}
			}
		})
		if tc.key == nil {
			if err := os.Remove(f.pol.HMACKeyPath); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(f.pol.HMACKeyPath, tc.key, 0o600); err != nil {
			t.Fatal(err)
		}
		s, b := f.attest()
		if b.BundleHMAC != "" || s.State == state.Attested {
			t.Errorf("Test %d (%s): hmac %q state %s, want unsigned and not attested", i, tc.name, b.BundleHMAC, s.State)
		}
		if _, ok := codes(b)["core.hmac_key"]; ok != tc.wantFinding {
			t.Errorf("Test %d (%s): core.hmac_key in failures = %v, want %v: %v", i, tc.name, ok, tc.wantFinding, b.Failures)
		}
	}
}

// TestFailedLatches: a critical finding fails the attestor, and a later
// clean attestation (after a reload with a clean plugin) does not undo it.
func TestFailedLatches(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{{name: "vendor", findings: []string{"critical"}}}, nil)
	if s, _ := f.attest(); s.State != state.Failed || s.FailCount != 1 {
		t.Fatalf("state %s fail_count %d, want failed 1", s.State, s.FailCount)
	}
	clean := pluginhost.New(pluginhost.Options{Dir: f.pol.PluginDir, Plugins: []pluginhost.Spec{{Name: "vendor", Enabled: true, ConfigJSON: []byte(`{}`)}}})
	if err := clean.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.engine.Reload(f.pol, "cd", clean)
	s, b := f.attest()
	if s.State != state.Failed || b.Score != 0 {
		t.Fatalf("after a clean attestation: state %s score %d, want failed (latched) with score 0", s.State, b.Score)
	}
}

// TestReloadRefusedDegrades: a refused reload is a finding in every bundle
// until a good policy is loaded.
func TestReloadRefusedDegrades(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{{name: "vendor"}}, nil)
	if s, _ := f.attest(); s.State != state.Attested {
		t.Fatalf("state %s, want attested", s.State)
	}
	f.engine.ReloadRefused(&policy.Error{Key: "thresholds", Msg: "out of order"})
	for i := 0; i < 2; i++ {
		s, b := f.attest()
		if _, ok := codes(b)["core.policy_reload"]; !ok || s.State != state.Degraded {
			t.Fatalf("attestation %d after a refused reload: state %s failures %v", i, s.State, b.Failures)
		}
	}
	h := pluginhost.New(pluginhost.Options{Dir: f.pol.PluginDir, Plugins: []pluginhost.Spec{{Name: "vendor", Enabled: true}}})
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.engine.Reload(f.pol, "ef", h)
	if s, _ := f.attest(); s.State != state.Attested {
		t.Fatalf("after a good reload: state %s, want attested (degraded -> attested)", s.State)
	}
}

// TestConcurrentRefreshesShareOneAttestation: many refreshes at once run a
// handful of attestations, and reads never wait.
func TestConcurrentRefreshesShareOneAttestation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{{name: "vendor"}}, nil)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.engine.Refresh(context.Background())
			errs <- err
		}()
	}
	reads := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
loop:
	for {
		select {
		case <-done:
			break loop
		default:
			_ = f.engine.Snapshot()
			reads++
		}
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s := f.engine.Snapshot()
	if s.AttestCount == 0 || s.AttestCount > 10 {
		t.Fatalf("%d refreshes ran %d attestations, want a handful", n, s.AttestCount)
	}
	t.Logf("%d concurrent refreshes: %d attestations, %d snapshot reads meanwhile", n, s.AttestCount, reads)
}

// TestAuditWriteFailureIsAFinding: when the audit log cannot be written the
// attestation still publishes, with core.audit_write, and logging resumes.
func TestAuditWriteFailureIsAFinding(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{{name: "vendor"}}, nil)
	f.attest()
	restore := breakLogFolder(t, f.pol.AuditLogPath)
	s, b := f.attest()
	if sev, ok := codes(b)["core.audit_write"]; !ok || sev != sdk.SeverityMedium || s.State == state.Attested {
		t.Fatalf("state %s failures %v, want core.audit_write (medium: the attestation's record failed)", s.State, b.Failures)
	}
	if err := bundle.Verify(s.Bundle, f.key); err != nil {
		t.Fatalf("the re-signed bundle does not verify: %v", err)
	}
	// Space returns: logging resumes and the state recovers.
	restore()
	if s, _ := f.attest(); s.State != state.Attested {
		t.Fatalf("after the log's folder came back: state %s", s.State)
	}
	if _, err := os.Stat(f.pol.AuditLogPath); err != nil {
		t.Fatalf("audit log not recreated: %v", err)
	}
}

// breakLogFolder replaces the audit log's folder by a file, so that every
// write and reopen fails, and returns what puts the folder back.
func breakLogFolder(t *testing.T, logPath string) (restore func()) {
	t.Helper()
	logs := filepath.Dir(logPath)
	if err := os.RemoveAll(logs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logs, []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(logs); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(logs, 0o700); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNoiseWriteFailureDoesNotDegrade: a refused-request record that could
// not be written (the disk was full a moment) is written before the next
// attestation's records, so nothing was lost and the state stays attested
// without core.audit_write; the bundle carries the audit log's head before
// its own records.
func TestNoiseWriteFailureDoesNotDegrade(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{{name: "vendor"}}, nil)
	f.attest()
	restore := breakLogFolder(t, f.pol.AuditLogPath)
	if err := f.engine.Auditor().Append(audit.TypeRefreshRefused, map[string]any{"count": 100000}); err == nil {
		t.Fatal("the write into a file where the folder should be succeeded")
	}
	restore()
	s, b := f.attest()
	if _, ok := codes(b)["core.audit_write"]; ok || s.State != state.Attested {
		t.Fatalf("state %s failures %v, want attested without core.audit_write", s.State, b.Failures)
	}
	if err := bundle.Verify(s.Bundle, f.key); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(f.pol.AuditLogPath)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var headSeq uint64
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		types = append(types, r.Type)
		if r.Type == audit.TypeAttestation && len(types) > 1 {
			break
		}
		headSeq = r.Seq
	}
	if !strings.Contains(strings.Join(types, " "), "refresh_refused attestation") {
		t.Errorf("records %v: the queued refusal is not written before the attestation", types)
	}
	if b.AuditHead == nil || b.AuditHead.Seq != headSeq || len(b.AuditHead.Hash) != 64 {
		t.Errorf("audit_head %+v, want seq %d (the record before the attestation's)", b.AuditHead, headSeq)
	}
}

// TestUnsignableMeasurementsAreDiscarded: a plugin answering a value with no
// RFC 8785 form (a lone surrogate) costs only its own measurements, never
// the attestation.
func TestUnsignableMeasurementsAreDiscarded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{
		{name: "vendor", measurements: map[string]any{"x": "ok"}},
		{name: "kernel", measurements: map[string]any{"kernel_cmdline": "quiet"}},
	}, nil)
	// A lone surrogate cannot travel through a Go string (json.Marshal
	// writes U+FFFD): hand the raw escape to the merge directly.
	b := &bundle.Bundle{}
	all := merge(b, []pluginhost.Result{
		{Name: "vendor", Measurements: map[string]json.RawMessage{"x": json.RawMessage(`"\ud800"`)}},
		{Name: "kernel", Measurements: map[string]json.RawMessage{"kernel_cmdline": json.RawMessage(`"quiet"`)}},
	}, nil)
	if b.Checks["vendor"].Measurements != nil {
		t.Errorf("unsignable measurements kept: %s", b.Checks["vendor"].Measurements)
	}
	found := false
	for _, a := range all {
		found = found || (a.Code == "core.plugin_protocol" && a.plugin == "vendor")
	}
	if !found || b.KernelCmdline == nil || *b.KernelCmdline != "quiet" {
		t.Fatalf("findings %+v, kernel_cmdline %v", all, b.KernelCmdline)
	}
	if err := b.Sign(f.key); err != nil {
		t.Fatalf("bundle cannot be signed: %v", err)
	}
	// And through real plugins the attestation completes and verifies.
	s, _ := f.attest()
	if err := bundle.Verify(s.Bundle, f.key); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshAfterMeasuringBegan: a refresh asked once an attestation's
// measurement has begun is answered by a later attestation (a file changed
// just before the refresh must be seen), and refreshes asked meanwhile
// share that one.
func TestRefreshAfterMeasuringBegan(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []echoPlugin{{name: "vendor"}}, nil)
	first, err := f.engine.start(true)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		f.engine.mu.Lock()
		began := first.measuring
		f.engine.mu.Unlock()
		if began {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the attestation never began measuring")
		}
		time.Sleep(time.Millisecond)
	}
	second, err := f.engine.start(true)
	if err != nil {
		t.Fatal(err)
	}
	third, err := f.engine.start(true)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatal("a refresh asked after the measurement began joined it")
	}
	<-first.done
	<-second.done
	<-third.done
	if first.err != nil || second.err != nil {
		t.Fatal(first.err, second.err)
	}
	seq := func(fl *flight) uint64 {
		var b struct {
			Sequence uint64 `json:"sequence"`
		}
		if err := json.Unmarshal(fl.snap.Bundle, &b); err != nil {
			t.Fatal(err)
		}
		return b.Sequence
	}
	if seq(second) <= seq(first) {
		t.Errorf("the later refresh got attestation %d, the earlier %d", seq(second), seq(first))
	}
	if seq(third) != seq(second) {
		t.Errorf("a refresh asked beside the queued one got attestation %d, want %d", seq(third), seq(second))
	}
}
