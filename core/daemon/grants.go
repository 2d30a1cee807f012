package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/secure-ai/runtime-attestor/builtin"
	"github.com/secure-ai/runtime-attestor/core/pluginhost"
	"github.com/secure-ai/runtime-attestor/internal/sandbox"
	"github.com/secure-ai/runtime-attestor/policy"
	"github.com/secure-ai/runtime-attestor/sdk"
)

// CodeSandbox (info) is added to a plugin's results when the daemon could
// not read what the plugin executable declares it needs, or when a
// third-party plugin declares more than its policy grants; the message
// names each missing path and the policy line that would grant it.
const CodeSandbox = pluginhost.CodeSandbox

// grants is what each enabled plugin may touch, by name, the findings the
// daemon adds to its results, and the declaration a built-in's grant
// holds (its executable's digest and description).
type grants struct {
	rules    map[string]sandbox.Rules
	notices  map[string][]sdk.Finding
	declared map[string]*pluginhost.Declared
}

// grantsMemo remembers the grants of the last policy they were computed
// for. A start (and a reload) computes them for the daemon's own sandbox
// (restrict, uncovered) and then for its plugin host, a moment apart:
// with the memo both see the same grants, computed once (declare runs
// recalled, every path resolved: about 3 ms of CPU before the first
// verdict). A policy is never changed once loaded; a reload loads a new
// one, which is computed again.
type grantsMemo struct {
	mu  sync.Mutex
	pol *policy.Policy
	g   grants
}

// grantsFor is pluginGrants, once per policy (grantsMemo).
func (d *daemon) grantsFor(ctx context.Context, pol *policy.Policy) (grants, error) {
	d.grants.mu.Lock()
	defer d.grants.mu.Unlock()
	if d.grants.pol == pol {
		return d.grants.g, nil
	}
	g, err := d.pluginGrants(ctx, pol)
	if err != nil {
		return grants{}, err
	}
	d.grants.pol, d.grants.g = pol, g
	return g, nil
}

// pluginGrants returns what each enabled plugin may touch: a built-in's
// sandbox as its executable declares it under its configuration (a
// declare run, remembered by executable and configuration) plus its
// plugins.<name>.sandbox; any other plugin's plugins.<name>.sandbox only
// (nothing when the policy grants nothing), with a finding when its
// executable declares more. No grant may reach the daemon's own files
// (exposes). The plugin host imposes each grant on its plugin before the
// plugin's first instruction.
func (d *daemon) pluginGrants(ctx context.Context, pol *policy.Policy) (grants, error) {
	out := grants{rules: map[string]sandbox.Rules{}, notices: map[string][]sdk.Finding{}, declared: map[string]*pluginhost.Declared{}}
	r := newResolver()
	for _, name := range builtin.Names() {
		if !pol.PluginEnabled(name) {
			continue
		}
		g, decl, notice, err := d.builtinGrant(ctx, r, pol, name)
		if err != nil {
			return grants{}, err
		}
		out.rules[name] = g
		if decl != nil {
			out.declared[name] = decl
		}
		if notice != nil {
			out.notices[name] = []sdk.Finding{*notice}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(pol.Plugins)) {
		if !pol.PluginEnabled(name) || policy.IsBuiltin(name) {
			continue
		}
		out.rules[name] = sandbox.Rules(pol.Plugins[name].Sandbox).Merge()
		if notice := d.thirdPartyNotice(ctx, pol, name); notice != nil {
			out.notices[name] = []sdk.Finding{*notice}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(out.rules)) {
		if err := r.exposes(pol, out.rules[name]); err != nil {
			return grants{}, fmt.Errorf("plugins.%s: %w", name, err)
		}
	}
	if err := evidenceSocketReach(pol, out.rules, sandbox.ABI()); err != nil {
		return grants{}, err
	}
	d.saveDeclarations()
	return out, nil
}

// builtinGrant is the built-in name's grant: its declaration plus
// plugins.<name>.sandbox. A configuration the executable refuses, or a
// declaration reaching the daemon's files, is an error (the policy is
// bad); an executable that is missing or untrusted gets the policy's grant
// only (its turn reports the file); one whose declare run fails gets the
// policy's grant and a finding. decl is the declaration the grant holds,
// nil when none did.
func (d *daemon) builtinGrant(ctx context.Context, r resolver, pol *policy.Policy, name string) (g sandbox.Rules, decl *pluginhost.Declared, notice *sdk.Finding, err error) {
	granted := sandbox.Rules(pol.Plugins[name].Sandbox).Merge()
	decl, err = d.declare(ctx, pol, name)
	var de *pluginhost.DeclareError
	switch {
	case errors.As(err, &de) && de.Kind == pluginhost.FaultConfig:
		return sandbox.Rules{}, nil, nil, fmt.Errorf("plugins.%s.config: %s", name, de.Msg)
	case errors.As(err, &de) && (de.Kind == pluginhost.FaultMissing || de.Kind == pluginhost.FaultUntrusted):
		return granted, nil, nil, nil
	case err != nil:
		return granted, nil, &sdk.Finding{Code: CodeSandbox, Severity: sdk.SeverityInfo, Subject: name,
			Message: fmt.Sprintf("%v; the plugin runs with plugins.%s.sandbox only", err, name)}, nil
	}
	if err := r.exposes(pol, decl.Sandbox); err != nil {
		return sandbox.Rules{}, nil, nil, fmt.Errorf("plugins.%s: the executable %s (sha256 %s) declares a sandbox that %w", name, decl.Path, decl.SHA256, declaredExposure(err))
	}
	return decl.Sandbox.Merge(granted), decl, nil, nil
}

// declaredExposure rewords exposes's error for a declared sandbox.
func declaredExposure(err error) error {
	return errors.New(strings.TrimPrefix(err.Error(), "its sandbox "))
}

// declare runs (or recalls) the declare run of the plugin name under pol.
func (d *daemon) declare(ctx context.Context, pol *policy.Policy, name string) (*pluginhost.Declared, error) {
	cfg, err := pol.PluginConfigJSON(name)
	if err != nil {
		return nil, err
	}
	return d.declarer.Declare(ctx, pol.PluginDir, name, pol.Plugins[name].SHA256, cfg)
}

// thirdPartyNotice is the finding for a third-party plugin whose
// executable declares more than plugins.<name>.sandbox grants, or whose
// declare run failed; nil when neither. A missing or untrusted executable,
// or a refused configuration, is left to the plugin's turn.
func (d *daemon) thirdPartyNotice(ctx context.Context, pol *policy.Policy, name string) *sdk.Finding {
	decl, err := d.declare(ctx, pol, name)
	var de *pluginhost.DeclareError
	switch {
	case errors.As(err, &de) && (de.Kind == pluginhost.FaultMissing || de.Kind == pluginhost.FaultUntrusted || de.Kind == pluginhost.FaultConfig):
		return nil
	case err != nil:
		return &sdk.Finding{Code: CodeSandbox, Severity: sdk.SeverityInfo, Subject: name,
			Message: fmt.Sprintf("%v; the plugin runs with what plugins.%s.sandbox grants", err, name)}
	case !decl.HasSandbox:
		return nil
	}
	msg := shortfall(pol, name, decl.Sandbox, sandbox.Rules(pol.Plugins[name].Sandbox).Merge())
	if msg == "" {
		return nil
	}
	d.logger.Warn("a third-party plugin declares more than its policy grants", "plugin", name, "detail", msg)
	return &sdk.Finding{Code: CodeSandbox, Severity: sdk.SeverityInfo, Subject: name, Message: msg}
}
