// Command prebuild builds, once and in parallel, every executable the test
// suite runs as a subprocess (the commands, the test plugins, the sandbox
// probes) into bin/test, for internal/testbin to share between the test
// processes of one `make test`. Run it from the module root:
//
//	go run ./internal/testbin/prebuild
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/secure-ai/runtime-attestor/internal/testbin"
)

// patterns are the packages the tests build (testbin.Build callers).
var patterns = []string{"./cmd/...", "./testplugins/...", "./internal/sandbox/internal/sandboxcheck", "./reliability/testdata/plugins/rawjson"}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "prebuild:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	args := append([]string{"list", "-f", `{{if eq .Name "main"}}{{.Dir}}{{end}}`}, patterns...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		return fmt.Errorf("go list: %w", err)
	}
	var pkgs []string
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			return err
		}
		pkgs = append(pkgs, "./"+filepath.ToSlash(rel))
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("no main packages in %v (run it from the module root)", patterns)
	}
	if err := testbin.Prebuild(root, pkgs); err != nil {
		return err
	}
	fmt.Printf("prebuild: %d executables in %s\n", len(pkgs), testbin.PrebuiltDir)
	return nil
}
