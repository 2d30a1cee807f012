package sdk_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/internal/wire/checkrpc"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/sdktest"
)

type demo struct {
	cfg struct {
		Path  string `json:"path"`
		Limit int    `json:"limit"`
	}
	panicOn string
	badCode bool
}

func (d *demo) Describe() sdk.Description {
	return sdk.Description{
		Name:    "demo",
		Version: "1.2.3",
		Fills:   []string{"demo_value"},
		Findings: []sdk.FindingSpec{
			{Code: "demo.seen", DefaultSeverity: sdk.SeverityLow, Description: "seen"},
		},
	}
}

func (d *demo) Configure(_ context.Context, cfg sdk.Config) error {
	if err := cfg.Decode(&d.cfg); err != nil {
		return err
	}
	if d.cfg.Limit < 0 {
		return sdk.ConfigErrorf("limit", "must not be negative, got %d", d.cfg.Limit)
	}
	return nil
}

func (d *demo) Measure(_ context.Context, req sdk.Request) (*sdk.Result, error) {
	switch d.panicOn {
	case "measure":
		panic("boom")
	case "error":
		return nil, errors.New("cannot read")
	}
	r := sdk.NewResult()
	r.Set("demo_value", len(req.Nonce))
	r.Addf("demo.seen", sdk.SeverityLow, d.cfg.Path, "seen %s", d.cfg.Path)
	if d.badCode {
		r.Addf("other.code", sdk.SeverityLow, "", "not mine")
	}
	return r, nil
}

func TestHarnessRoundTrip(t *testing.T) {
	t.Parallel()
	h := sdktest.New(t, &demo{})
	if got := h.Description(); got.Name != "demo" || got.Version != "1.2.3" || len(got.Findings) != 1 {
		t.Fatalf("description = %+v", got)
	}
	if err := h.Configure(map[string]any{"path": "/x", "limit": 3}); err != nil {
		t.Fatal(err)
	}
	res := h.MustMeasure()
	var n int
	if err := res.Decode("demo_value", &n); err != nil || n != 32 {
		t.Fatalf("demo_value = %d, %v; want 32 (nonce length)", n, err)
	}
	f := res.Find("demo.seen")
	if len(f) != 1 || f[0].Subject != "/x" || f[0].Severity != sdk.SeverityLow || f[0].Message != "seen /x" {
		t.Fatalf("findings = %+v", res.Findings)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for i, tc := range []struct {
		cfg  any
		want string
	}{
		{map[string]any{"nope": 1}, "nope: unknown key"},
		{map[string]any{"limit": "x"}, "limit: wrong type"},
		{map[string]any{"limit": -1}, "limit: must not be negative"},
	} {
		h := sdktest.New(t, &demo{})
		err := h.Configure(tc.cfg)
		var ce *sdk.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Test %d: Configure(%v) = %v, want a ConfigError containing %q", i, tc.cfg, err, tc.want)
		}
	}
}

func TestPanicAndErrorBecomeCheckErrors(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"measure", "error"} {
		h := sdktest.New(t, &demo{panicOn: mode})
		_, err := h.Measure()
		var ce *checkrpc.CheckError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: err = %v, want *checkrpc.CheckError", mode, err)
		}
		// The server survives and answers the next call the same way.
		if _, err := h.Measure(); !errors.As(err, &ce) {
			t.Fatalf("%s: second measure: err = %v, want *checkrpc.CheckError", mode, err)
		}
	}
}

func TestForeignCodeIsProtocolError(t *testing.T) {
	t.Parallel()
	h := sdktest.New(t, &demo{badCode: true})
	_, err := h.Measure()
	if !wire.IsProtocolError(err) {
		t.Fatalf("err = %v, want protocol error", err)
	}
}

func TestSeverityText(t *testing.T) {
	t.Parallel()
	for _, s := range sdk.Severities() {
		b, err := s.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back sdk.Severity
		if err := back.UnmarshalText(b); err != nil || back != s {
			t.Fatalf("round trip %v: %v %v", s, back, err)
		}
	}
	if _, err := sdk.ParseSeverity("severe"); err == nil {
		t.Fatal("ParseSeverity accepted an unknown name")
	}
	if sdk.Severity(0).Valid() || sdk.Severity(6).Valid() {
		t.Fatal("out-of-range severity is valid")
	}
}
