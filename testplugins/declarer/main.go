// Command declarer is a test plugin whose sandbox declaration comes from
// its configuration, and which can answer a declare run with anything.
//
// Configuration: "sandbox" (the sandbox it declares, as sandbox.Rules
// JSON), "read" (files Measure tries to read: one finding
// <name>.read_ok or <name>.read_denied per file, subject the path) and
// "declare", how it answers a declare run: "" (through the SDK, declaring
// "sandbox"), "raw" (prints a declaration with "sandbox" as is, unchecked,
// so it may name "/" or a relative path), "garbage", "huge" (100 MB),
// "hang", "twice" (two declarations), "exit" (exits 3 at once) or
// "wrongname" (describes itself as another plugin).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/secure-ai/runtime-attestor/sdk"
	"github.com/secure-ai/runtime-attestor/sdk/plugin"
	"github.com/secure-ai/runtime-attestor/testplugins/internal/tp"
)

type config struct {
	Sandbox sdk.Sandbox `json:"sandbox"`
	Read    []string    `json:"read"`
	Declare string      `json:"declare"`
}

type check struct {
	tp.Check
	cfg config
}

func (c *check) Configure(_ context.Context, cfg sdk.Config) error { return cfg.Decode(&c.cfg) }

func (c *check) Sandbox() sdk.Sandbox { return c.cfg.Sandbox }

func (c *check) Measure(context.Context, sdk.Request) (*sdk.Result, error) {
	res := sdk.NewResult()
	for _, p := range c.cfg.Read {
		if _, err := os.ReadFile(p); err != nil {
			res.Addf(tp.Name()+".read_denied", sdk.SeverityLow, p, "%v", err)
		} else {
			res.Addf(tp.Name()+".read_ok", sdk.SeverityLow, p, "read")
		}
	}
	return res, nil
}

func main() {
	c := &check{Check: tp.Check{Codes: []string{tp.Name() + ".read_ok", tp.Name() + ".read_denied"}}}
	if os.Getenv("RUNTIME_ATTESTOR_DECLARE") == "1" {
		raw, _ := io.ReadAll(os.Stdin)
		var cfg config
		_ = json.Unmarshal(raw, &cfg)
		if cfg.Declare != "" {
			hostile(cfg)
			return
		}
		// Through the SDK: give it the configuration back on stdin.
		r, w, err := os.Pipe()
		if err != nil {
			os.Exit(4)
		}
		go func() { _, _ = w.Write(raw); w.Close() }()
		os.Stdin = r
	}
	plugin.Serve(c)
}

// hostile answers a declare run as cfg.Declare says.
func hostile(cfg config) {
	name := tp.Name()
	decl := func(n string) []byte {
		b, _ := json.Marshal(map[string]any{"name": n, "version": "1.0.0",
			"findings": []map[string]string{{"code": n + ".ok", "severity": "info", "description": "ok"}},
			"sandbox":  cfg.Sandbox})
		return b
	}
	switch cfg.Declare {
	case "raw":
		os.Stdout.Write(decl(name))
	case "garbage":
		fmt.Println("\x00\xffnot a declaration {")
	case "huge":
		line := bytes.Repeat([]byte("A"), 1<<20)
		for range 100 {
			if _, err := os.Stdout.Write(line); err != nil {
				os.Exit(5)
			}
		}
	case "hang":
		time.Sleep(time.Hour)
	case "twice":
		os.Stdout.Write(decl(name))
		os.Stdout.Write(decl(name))
	case "exit":
		fmt.Fprintln(os.Stderr, "declarer: exiting before declaring")
		os.Exit(3)
	case "wrongname":
		os.Stdout.Write(decl("tpm"))
	}
}
