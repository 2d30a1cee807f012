// Command panicmeasure panics inside Measure. The SDK recovers the panic and
// answers an error, so the process survives: the daemon reports
// core.plugin_failed.
package main

import (
	"context"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&tp.Check{OnMeasure: func(context.Context, sdk.Request) (*sdk.Result, error) {
		panic("panicmeasure: deliberate panic in Measure")
	}})
}
