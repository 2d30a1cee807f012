package plugin

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/internal/peercred"

	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Serve serves c to the runtime-attestor daemon and returns only when the
// daemon is done with the plugin. Call it from main and do nothing else
// there. Logs go to stderr as hclog JSON; stdout belongs to the protocol.
//
// Run by hand (not started by the daemon), Serve prints a one-line
// explanation to stderr and exits with status 1.
func Serve(c sdk.Check) {
	if !wire.Started() {
		fmt.Fprintf(os.Stderr, "%s: this is a runtime-attestor check plugin; the runtime-attestor daemon starts it, it is not run by hand\n", filepath.Base(os.Args[0]))
		os.Exit(1)
	}
	if declareRequested() {
		runDeclare(c) // the daemon asks what c needs; never returns
	}
	d := c.Describe()
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       d.Name,
		Level:      hclog.LevelFromString(os.Getenv(wire.LogLevelEnv)),
		Output:     os.Stderr,
		JSONFormat: true,
	})
	if logger.GetLevel() == hclog.NoLevel {
		logger.SetLevel(hclog.Info)
	}
	// No TLS: the kernel names the connecting process (internal/peercred).
	daemon, err := peercred.NewPluginCheck()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	accept := func(conn net.Conn) error { _, err := daemon.Check(conn); return err }
	if err := wire.Serve(c, logger, accept, os.Stdout); err != nil {
		logger.Error("cannot serve the daemon", "error", err)
		os.Exit(1)
	}
}
