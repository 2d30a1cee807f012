// Command light is the cheapest plugin there is, for benchmarks that install
// it N times under different names: it fills no bundle field and answers one
// info finding. Its name comes from its file name, so every copy is a
// distinct plugin.
package main

import (
	"context"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&tp.Check{OnMeasure: func(context.Context, sdk.Request) (*sdk.Result, error) {
		res := sdk.NewResult()
		res.Addf(tp.OKCode(), sdk.SeverityInfo, tp.Name(), "light check ran")
		return res, nil
	}})
}
