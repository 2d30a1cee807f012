// Command oversize answers a 5 MiB measurement, more than the daemon's
// answer limit (4 MiB by default, gRPC's own default too):
// core.plugin_protocol.
package main

import (
	"context"
	"strings"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&tp.Check{OnMeasure: func(_ context.Context, req sdk.Request) (*sdk.Result, error) {
		res := tp.OK(req)
		res.Set("blob", strings.Repeat("x", 5<<20))
		return res, nil
	}})
}
