// Package inproc runs the built-in checks inside the calling process,
// without go-plugin, gRPC or subprocesses, behind the engine's Host
// interface. Driving the real engine with it gives the benchmark's baseline
// for an attestation: the same checks, configured from the same policy,
// merged, signed and audited the same way, minus the plugin transport.
package inproc

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/secure-ai/runtime-attestor/builtin"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/plugins/binaries"
	"github.com/secure-ai/runtime-attestor/plugins/kernel"
	"github.com/secure-ai/runtime-attestor/plugins/ostree"
	"github.com/secure-ai/runtime-attestor/plugins/policies"
	"github.com/secure-ai/runtime-attestor/plugins/secureboot"
	"github.com/secure-ai/runtime-attestor/plugins/tpm"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// Builtin returns a fresh instance of the built-in check called name, or
// nil when there is no such built-in.
func Builtin(name string) sdk.Check {
	switch name {
	case "binaries":
		return binaries.New()
	case "kernel":
		return kernel.New()
	case "ostree":
		return ostree.New()
	case "policies":
		return policies.New()
	case "secureboot":
		return secureboot.New()
	case "tpm":
		return tpm.New()
	}
	return nil
}

type check struct {
	name    string
	check   sdk.Check
	desc    sdk.Description
	timeout time.Duration
}

// Host measures in-process checks. It implements the engine's Host.
type Host struct {
	checks   []check
	parallel int
	logger   hclog.Logger
}

// New configures the enabled built-in checks of pol exactly as the daemon
// would (pol.PluginConfigJSON) and returns a host that measures them with
// pol.MaxParallelPlugins at once.
func New(ctx context.Context, pol *policy.Policy, logger hclog.Logger) (*Host, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	h := &Host{parallel: max(1, pol.MaxParallelPlugins), logger: logger}
	for _, name := range builtin.Names() {
		if !pol.PluginEnabled(name) {
			continue
		}
		c := Builtin(name)
		if c == nil {
			return nil, fmt.Errorf("inproc: no built-in check %q", name)
		}
		if cf, ok := c.(sdk.Configurer); ok {
			raw, err := pol.PluginConfigJSON(name)
			if err != nil {
				return nil, fmt.Errorf("inproc: %w", err)
			}
			if err := cf.Configure(ctx, sdk.NewConfig(raw)); err != nil {
				return nil, fmt.Errorf("inproc: configure %s: %w", name, err)
			}
		}
		h.checks = append(h.checks, check{name: name, check: c, desc: c.Describe(), timeout: pol.PluginTimeoutFor(name)})
	}
	sort.Slice(h.checks, func(i, j int) bool { return h.checks[i].name < h.checks[j].name })
	return h, nil
}

// Names lists the checks the host measures, sorted.
func (h *Host) Names() []string {
	out := make([]string, len(h.checks))
	for i, c := range h.checks {
		out[i] = c.name
	}
	return out
}

// Measure runs every check once, at most the policy's max_parallel_plugins
// at a time, each under its timeout, and returns the results sorted by
// name. A check that fails or panics gives a core.plugin_failed finding,
// as in the daemon.
func (h *Host) Measure(ctx context.Context, nonce []byte) []pluginhost.Result {
	out := make([]pluginhost.Result, len(h.checks))
	sem := make(chan struct{}, h.parallel)
	var wg sync.WaitGroup
	for i := range h.checks {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = h.measure(ctx, h.checks[i], nonce)
		}()
	}
	wg.Wait()
	return out
}

func (h *Host) measure(ctx context.Context, c check, nonce []byte) (res pluginhost.Result) {
	started := time.Now()
	res = pluginhost.Result{Name: c.name, Version: c.desc.Version, Fills: c.desc.Fills, Started: started}
	defer func() {
		if r := recover(); r != nil {
			res = failed(res, fmt.Sprintf("the check panicked: %v", r))
		}
		res.Duration = time.Since(started)
	}()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	r, err := c.check.Measure(ctx, sdk.Request{Nonce: nonce, Deadline: deadline, Logger: h.logger.Named(c.name)})
	if err != nil {
		return failed(res, err.Error())
	}
	if r == nil {
		return failed(res, "the check returned no result")
	}
	res.Measurements = make(map[string]json.RawMessage, len(r.Measurements))
	for k, v := range r.Measurements {
		raw, err := json.Marshal(v)
		if err != nil {
			return failed(res, fmt.Sprintf("measurement %s: %v", k, err))
		}
		res.Measurements[k] = raw
	}
	res.Findings = r.Findings
	return res
}

func failed(res pluginhost.Result, msg string) pluginhost.Result {
	res.Fault = pluginhost.FaultFailed
	res.Measurements = nil
	res.Findings = []sdk.Finding{{Code: "core.plugin_failed", Severity: sdk.SeverityHigh, Subject: res.Name, Message: "plugin " + res.Name + ": " + msg}}
	return res
}

// Close does nothing: the checks hold no resources between measurements.
func (h *Host) Close() {}
