// Command sandboxcheck is the check plugin the sandbox tests run: it
// declares as its sandbox exactly the files, folders and commands its
// configuration names, and each measurement runs the configured probes
// (some inside the sandbox, some meant to be refused) and reports how each
// ended.
package main

import (
	"context"

	"github.com/secure-ai/runtime-attestor/internal/sandbox/internal/probe"
	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

type config struct {
	ReadOnly  []string   `json:"read_only"`
	ReadWrite []string   `json:"read_write"`
	Exec      []string   `json:"exec"`
	Probes    []probe.Op `json:"probes"`
}

type check struct{ cfg config }

func (c *check) Describe() sdk.Description {
	return sdk.Description{
		Name:    "sandboxcheck",
		Version: "1.0.0",
		Summary: "runs sandbox probes for the tests",
	}
}

func (c *check) Configure(_ context.Context, cfg sdk.Config) error {
	return cfg.Decode(&c.cfg)
}

func (c *check) Sandbox() sdk.Sandbox {
	return sdk.Sandbox{ReadOnly: c.cfg.ReadOnly, ReadWrite: c.cfg.ReadWrite, Exec: c.cfg.Exec}
}

func (c *check) Measure(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
	res := sdk.NewResult()
	res.Set("probes", probe.Run(ctx, c.cfg.Probes))
	return res, nil
}

var _ sdk.Sandboxer = (*check)(nil)

func main() { plugin.Serve(&check{}) }
