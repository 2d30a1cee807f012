// Command echo is a test plugin that answers what its configuration says:
// the measurements under "measurements" (any JSON values) and one finding
// <name>.<severity> per entry of "findings" ("info", "low", "medium",
// "high", "critical"). Installed as attestor-check-tpm it fills the TPM's
// bundle fields, as attestor-check-vendor it is a third-party plugin: the
// engine's tests use it to drive merges, weights and states through real
// plugin processes.
package main

import (
	"context"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

type echo struct {
	cfg struct {
		Measurements map[string]any `json:"measurements"`
		Findings     []sdk.Severity `json:"findings"`
	}
}

func (e *echo) Describe() sdk.Description {
	d := sdk.Description{Name: tp.Name(), Version: "1.0.0", Summary: "echoes its configuration"}
	for _, s := range sdk.Severities() {
		d.Findings = append(d.Findings, sdk.FindingSpec{Code: tp.Name() + "." + s.String(), DefaultSeverity: s, Description: "a " + s.String() + " finding"})
	}
	return d
}

func (e *echo) Configure(_ context.Context, cfg sdk.Config) error { return cfg.Decode(&e.cfg) }

func (e *echo) Measure(context.Context, sdk.Request) (*sdk.Result, error) {
	res := sdk.NewResult()
	for k, v := range e.cfg.Measurements {
		res.Set(k, v)
	}
	for _, s := range e.cfg.Findings {
		res.Addf(tp.Name()+"."+s.String(), s, tp.Name(), "echoed a %s finding", s)
	}
	return res, nil
}

func main() { plugin.Serve(&echo{}) }
