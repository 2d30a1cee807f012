// Command rawjson is a check plugin that answers, as its measurement
// "value", the raw JSON text given in its configuration (key "value"): a
// plugin, third-party or compromised, that sends JSON the wire accepts but
// that may not be signable (a number beyond IEEE 754, duplicate member
// names, a lone surrogate). The reliability suite installs it next to the
// built-ins to check that such an answer becomes a finding and never stops
// the attestation.
package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
)

type check struct{ value json.RawMessage }

func name() string { return strings.TrimPrefix(filepath.Base(os.Args[0]), "attestor-check-") }

func (c *check) Describe() sdk.Description {
	return sdk.Description{
		Name:    name(),
		Version: "1.0.0",
		Summary: "answers the raw JSON it is configured with",
		Findings: []sdk.FindingSpec{
			{Code: name() + ".ok", DefaultSeverity: sdk.SeverityInfo, Description: "the value was sent"},
		},
	}
}

func (c *check) Configure(_ context.Context, cfg sdk.Config) error {
	var v struct {
		Value       string `json:"value"`
		ValueBase64 []byte `json:"value_base64"`
	}
	if err := cfg.Decode(&v); err != nil {
		return err
	}
	switch {
	case len(v.ValueBase64) > 0:
		c.value = json.RawMessage(v.ValueBase64)
	case v.Value != "":
		c.value = json.RawMessage(v.Value)
	default:
		c.value = json.RawMessage("null")
	}
	return nil
}

func (c *check) Measure(context.Context, sdk.Request) (*sdk.Result, error) {
	res := sdk.NewResult()
	res.Set("value", c.value)
	res.Addf(name()+".ok", sdk.SeverityInfo, name(), "sent %d bytes of raw JSON", len(c.value))
	return res, nil
}

func main() { plugin.Serve(&check{}) }
