// Command slow answers well, but only after delay_ms milliseconds (config,
// default 300), honouring its deadline.
package main

import (
	"context"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	var cfg struct {
		DelayMS int `json:"delay_ms"`
	}
	cfg.DelayMS = 300
	plugin.Serve(&tp.Check{
		OnConfigure: func(_ context.Context, c sdk.Config) error { return c.Decode(&cfg) },
		OnMeasure: func(ctx context.Context, req sdk.Request) (*sdk.Result, error) {
			select {
			case <-time.After(time.Duration(cfg.DelayMS) * time.Millisecond):
				return tp.OK(req), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
}
