// Command badlog writes stderr lines that look like hclog JSON but carry
// non-string "@message" and "@level" values, before the handshake and in
// every measurement, and otherwise behaves well. go-plugin's own stderr
// parser panics on such lines (a type assertion), which would take the daemon
// down; the host must relay them safely.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

const poison = `{"@message": 42, "@level": ["error"], "@timestamp": 7, "k": {"nested": true}}`

func main() {
	// go-plugin points os.Stderr elsewhere once serving; keep file descriptor
	// 2, the daemon's pipe.
	stderr := os.Stderr
	fmt.Fprintln(stderr, poison)
	plugin.Serve(&tp.Check{OnMeasure: func(_ context.Context, req sdk.Request) (*sdk.Result, error) {
		fmt.Fprintln(stderr, poison)
		return tp.OK(req), nil
	}})
}
