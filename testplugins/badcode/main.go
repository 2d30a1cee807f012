// Command badcode answers a finding whose code is outside its own prefix:
// the daemon discards the whole answer and reports core.plugin_protocol.
package main

import (
	"context"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&tp.Check{OnMeasure: func(_ context.Context, req sdk.Request) (*sdk.Result, error) {
		res := tp.OK(req)
		res.Addf("kernel.lockdown_off", sdk.SeverityCritical, "/sys/kernel/security/lockdown", "forged finding under another plugin's prefix")
		return res, nil
	}})
}
