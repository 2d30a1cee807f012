// Command attestor-bench is the runtime-attestor benchmark behind
// `make bench`: it measures hashing, the attestation cycle, the HTTP API,
// the footprint and scaling against baselines run in the same invocation,
// prints one table, and writes bench/results.json and bench/RESULTS.md.
// See docs/performance.md.
//
// Environment: BENCH_QUICK=1 shrinks every size (about a minute, figures
// not worth publishing); BENCH_IDLE sets the idle CPU window (default 60s);
// BENCH_DIR is where the temporary files go (default $TMPDIR).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/secure-ai/runtime-attestor/bench/internal/bare"
	"github.com/secure-ai/runtime-attestor/bench/internal/rig"
	"github.com/secure-ai/runtime-attestor/bench/internal/suite"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("attestor-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository `root` (policy templates and example policies)")
	bin := fs.String("bin", "bin", "`folder` of make build: runtime-attestor, attestctl, plugins/attestor-check-*")
	light := fs.String("light", "bin/bench/attestor-check-light", "the light test plugin's `executable` (testplugins/light)")
	jsonOut := fs.String("json", "bench/results.json", "JSON results `file`")
	mdOut := fs.String("md", "bench/RESULTS.md", "Markdown results `file`")
	serveFixed := fs.String("serve-fixed", "", "serve the recorded answers in this routes `file` as the bare HTTP baseline (used by the benchmark itself)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "attestor-bench: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *serveFixed != "" {
		if err := bare.Serve(ctx, *serveFixed, stdout); err != nil {
			fmt.Fprintf(stderr, "attestor-bench: bare server: %v\n", err)
			return 1
		}
		return 0
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "attestor-bench: %v\n", err)
		return 1
	}
	mode, sizes := "full", suite.FullSizes()
	if os.Getenv("BENCH_QUICK") == "1" {
		mode, sizes = "quick", suite.QuickSizes()
	}
	if v := os.Getenv("BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			fmt.Fprintf(stderr, "attestor-bench: BENCH_IDLE=%q: want a positive duration such as 60s\n", v)
			return 2
		}
		sizes.Idle = d
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	cfg := suite.Config{
		Mode: mode,
		Root: abs(*root),
		Bins: rig.Bins{
			Daemon:    abs(filepath.Join(*bin, "runtime-attestor")),
			Attestctl: abs(filepath.Join(*bin, "attestctl")),
			Plugins:   abs(filepath.Join(*bin, "plugins")),
			Light:     abs(*light),
			Bench:     self,
		},
		WorkDir:  os.Getenv("BENCH_DIR"),
		Sizes:    sizes,
		Progress: stderr,
	}
	rep, err := suite.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "attestor-bench: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout)
	if err := rep.Text(stdout); err != nil {
		fmt.Fprintf(stderr, "attestor-bench: %v\n", err)
		return 1
	}
	if err := rep.WriteFiles(*jsonOut, *mdOut, filepath.Join(filepath.Dir(*mdOut), "results.md.tmp")); err != nil {
		fmt.Fprintf(stderr, "attestor-bench: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "\nwrote %s and %s\n", *jsonOut, *mdOut)
	return 0
}
