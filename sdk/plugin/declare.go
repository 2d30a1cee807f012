package plugin

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/secure-ai/runtime-attestor/internal/declare"
	"github.com/secure-ai/runtime-attestor/internal/wire"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// declareTimeout bounds Configure in a declare run; the host's own limit
// is shorter.
const declareTimeout = 30 * time.Second

// declareRequested reports whether the daemon started this process for a
// declare run rather than to serve it (see package internal/declare).
func declareRequested() bool {
	return os.Getenv(declare.Env) == declare.EnvValue &&
		wire.Started()
}

// serveDeclare is the plugin's side of a declare run: it reads the
// configuration from in, configures c with it and writes c's declaration
// to out. A configuration c refuses is part of the declaration, not an
// error. The process is confined to nothing meanwhile: Configure and
// Sandbox may look at file metadata (stat, readlink: Landlock does not
// restrict them) but read no file.
func serveDeclare(c sdk.Check, in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(io.LimitReader(in, declare.MaxConfig+1))
	if err != nil {
		return fmt.Errorf("read the configuration: %w", err)
	}
	if len(raw) > declare.MaxConfig {
		return fmt.Errorf("configuration over %d bytes", declare.MaxConfig)
	}
	d := c.Describe()
	decl := declare.Declaration{Name: d.Name, Version: d.Version, Summary: d.Summary, Fills: d.Fills}
	for _, f := range d.Findings {
		decl.Findings = append(decl.Findings, declare.Finding{Code: f.Code, Severity: f.DefaultSeverity.String(), Description: f.Description})
	}
	ctx, cancel := context.WithTimeout(context.Background(), declareTimeout)
	defer cancel()
	sb, ok, err := sdk.DeclaredSandbox(ctx, c, raw)
	switch {
	case err != nil:
		decl.ConfigError = err.Error()
	case ok:
		rules := wire.Rules(sb)
		decl.Sandbox = &rules
	}
	return declare.Encode(out, decl)
}

// runDeclare is Serve in a declare run: it never returns.
func runDeclare(c sdk.Check) {
	if err := serveDeclare(c, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "declare: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}
