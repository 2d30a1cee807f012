// Command refuseconfig refuses its configuration: always, or, when
// refuse_if_exists names a file, only while that file exists (so a test can
// make a restart refuse what the start accepted). With plain_error it fails
// Configure with a plain error instead of a *sdk.ConfigError (a failure to
// configure, not a bad value).
package main

import (
	"context"
	"errors"
	"os"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	plugin.Serve(&tp.Check{OnConfigure: func(_ context.Context, c sdk.Config) error {
		var cfg struct {
			RefuseIfExists string `json:"refuse_if_exists"`
			PlainError     bool   `json:"plain_error"`
		}
		if err := c.Decode(&cfg); err != nil {
			return err
		}
		if cfg.RefuseIfExists != "" {
			if _, err := os.Stat(cfg.RefuseIfExists); err != nil {
				return nil
			}
		}
		if cfg.PlainError {
			return errors.New("the device is busy")
		}
		return sdk.ConfigErrorf("mode", "refused by the refuseconfig test plugin")
	}})
}
