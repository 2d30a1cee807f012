// Command exitmid exits with status 4 in the middle of a measurement.
package main

import (
	"context"
	"os"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&tp.Check{OnMeasure: func(context.Context, sdk.Request) (*sdk.Result, error) {
		time.Sleep(20 * time.Millisecond)
		os.Exit(4)
		return nil, nil
	}})
}
