// Command hang never answers a measurement and ignores its deadline.
package main

import (
	"context"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&tp.Check{OnMeasure: func(context.Context, sdk.Request) (*sdk.Result, error) {
		select {}
	}})
}
