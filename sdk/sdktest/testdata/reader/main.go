// Command reader is a check plugin for sdktest's own tests: it declares
// the files in "declare" as its sandbox and reads the files in "read",
// reporting each failure as a reader.unreadable finding.
package main

import (
	"context"
	"os"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

type check struct {
	cfg struct {
		Read    []string `json:"read"`
		Declare []string `json:"declare"`
	}
}

func (c *check) Describe() sdk.Description {
	return sdk.Description{Name: "reader", Version: "1.0.0", Summary: "reads files", Findings: []sdk.FindingSpec{
		{Code: "reader.unreadable", DefaultSeverity: sdk.SeverityMedium, Description: "a file could not be read"},
	}}
}

func (c *check) Configure(_ context.Context, cfg sdk.Config) error { return cfg.Decode(&c.cfg) }

func (c *check) Sandbox() sdk.Sandbox { return sdk.Sandbox{ReadOnly: c.cfg.Declare} }

func (c *check) Measure(context.Context, sdk.Request) (*sdk.Result, error) {
	res := sdk.NewResult()
	for _, p := range c.cfg.Read {
		if _, err := os.ReadFile(p); err != nil {
			res.Addf("reader.unreadable", sdk.SeverityMedium, p, "%v", err)
		}
	}
	return res, nil
}

func main() { plugin.Serve(&check{}) }
