// Command panicgoroutine panics in a goroutine it starts from Measure. No one
// can recover that panic: the process dies mid-measurement and the daemon
// reports core.plugin_crashed.
package main

import (
	"context"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&tp.Check{OnMeasure: func(ctx context.Context, _ sdk.Request) (*sdk.Result, error) {
		go func() { panic("panicgoroutine: deliberate panic in a goroutine") }()
		<-ctx.Done()
		return nil, ctx.Err()
	}})
}
