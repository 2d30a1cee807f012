// Command stdoutafter writes to stdout after the handshake, both through
// os.Stdout (which go-plugin redirects) and straight to file descriptor 1
// (the daemon's pipe). Both must be tolerated: its answers are good.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

func main() {
	fd1 := os.NewFile(1, "stdout")
	plugin.Serve(&tp.Check{OnMeasure: func(_ context.Context, req sdk.Request) (*sdk.Result, error) {
		fmt.Println("stdoutafter: chatter on os.Stdout")
		fmt.Fprintln(fd1, "stdoutafter: chatter on file descriptor 1")
		fmt.Fprintln(fd1, "1|1|unix|/nonexistent|grpc|")
		return tp.OK(req), nil
	}})
}
