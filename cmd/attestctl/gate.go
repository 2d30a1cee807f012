package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// pollTimeout bounds one poll of /api/v1/verify, so that one stuck
// connection does not eat the whole gate.
const pollTimeout = 5 * time.Second

func (a *app) gate(args []string) int {
	fs := a.flagSet("gate", "[--pubkey FILE [--max-age 15m]] [--ak FILE] [--until attested|degraded] [--timeout 30s] [--interval 500ms]",
		"Waits until the attestor's state allows a service to start, for a unit's\n"+
			"ExecStartPre. With --pubkey it believes only a bundle signed by the attestor's\n"+
			"key (GET /api/v1/attest, bundle_signature verified, no older than --max-age),\n"+
			"so a process squatting on the port cannot pass it; with --ak it also asks for\n"+
			"TPM evidence over a fresh nonce (GET /api/v1/evidence) and verifies the quote\n"+
			"as verify-evidence does, so not even a replayed bundle passes. Without either\n"+
			"it polls GET /api/v1/verify and trusts whoever answers. --until attested (the default) waits\n"+
			"for attested; --until degraded also accepts degraded (for services that can\n"+
			"run in a restricted mode). A failed state exits 1 at once: it holds until the\n"+
			"attestor restarts. Exit 0 when the state is reached, 1 on failed or timeout\n"+
			"(with the last state seen, or why the attestor was unreachable).")
	until := fs.String("until", "attested", "state to wait for: attested, or degraded (attested or degraded)")
	total := fs.Duration("timeout", 30*time.Second, "how long to wait in all")
	interval := fs.Duration("interval", 500*time.Millisecond, "pause between polls")
	pubFile := fs.String("pubkey", "", "PEM file holding the attestor's public signing key")
	akFile := fs.String("ak", "", "PEM file holding the attestor's attestation key (needs a TPM)")
	maxAge := fs.Duration("max-age", 15*time.Minute, "with --pubkey: refuse a bundle older than this")
	a.addrFlag(fs)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageError(fs, "gate takes no arguments")
	}
	var accept func(state.State) bool
	switch *until {
	case "attested":
		accept = func(s state.State) bool { return s == state.Attested }
	case "degraded":
		accept = func(s state.State) bool { return s == state.Attested || s == state.Degraded }
	default:
		return a.usageError(fs, "--until %q: want attested or degraded", *until)
	}
	if *total <= 0 {
		return a.usageError(fs, "--timeout must be positive")
	}
	if *interval <= 0 {
		return a.usageError(fs, "--interval must be positive")
	}
	if _, err := a.baseURL(); err != nil {
		return a.usageError(fs, "%v", err)
	}
	poll := a.pollVerify
	var sg *signedGate
	if *pubFile != "" || *akFile != "" {
		if *maxAge <= 0 {
			return a.usageError(fs, "--max-age must be positive")
		}
		var code int
		sg, code = a.newSignedGate(*pubFile, *akFile, *maxAge, *until == "degraded")
		if code != exitOK {
			return code
		}
		poll = sg.poll
	} else {
		fmt.Fprintf(a.stderr, "attestctl: gate: warning: no --pubkey: any process that answers on the port can pass this gate\n")
	}

	return a.waitFor(poll, accept, sg, *total, *interval)
}

// waitFor polls until the state is accepted (exit 0), failed or the time
// is up (exit 1), telling each new reason for waiting once. sg, when not
// nil, is the signed gate whose key the accepted answer names.
func (a *app) waitFor(poll func(context.Context) (state.State, string), accept func(state.State) bool, sg *signedGate, total, interval time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), total)
	defer cancel()
	last, lastReported := "", ""
	for {
		st, reason := poll(ctx)
		switch {
		case st != "" && accept(st):
			if sg != nil { // which key the answer was signed with
				fmt.Fprintf(a.stdout, "attestor state %s (%s)\n", st, sg.verified)
			} else {
				fmt.Fprintf(a.stdout, "attestor state %s\n", st)
			}
			return exitOK
		case st == state.Failed:
			return a.fail(exitFail, "gate: attestor state is failed (it holds until the attestor restarts)")
		}
		if ctx.Err() == nil || last == "" {
			last = reason
		}
		if last != lastReported {
			fmt.Fprintf(a.stderr, "attestctl: gate: waiting: %s\n", last)
			lastReported = last
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return a.fail(exitFail, "gate: timed out after %s: %s", total, last)
		case <-t.C:
		}
	}
}

// pollVerify asks /api/v1/verify once. It returns the state when the
// attestor answered, else "" and why not.
func (a *app) pollVerify(ctx context.Context) (state.State, string) {
	pctx, cancel := context.WithTimeout(ctx, min(a.requestTimeout(pollTimeout), pollTimeout))
	defer cancel()
	r, err := a.call(pctx, http.MethodGet, "/api/v1/verify", nil)
	if err != nil {
		return "", "attestor unreachable: " + err.Error()
	}
	var v apitypes.VerifyResponse
	if (r.code != http.StatusOK && r.code != http.StatusServiceUnavailable) || json.Unmarshal(r.body, &v) != nil || !v.State.Valid() {
		return "", fmt.Sprintf("unexpected answer from /api/v1/verify: HTTP %d: %s", r.code, clean(r.errorText()))
	}
	if r.code == http.StatusOK && v.State != state.Attested {
		return "", fmt.Sprintf("inconsistent answer from /api/v1/verify: HTTP 200 with state %s", v.State)
	}
	return v.State, "attestor state is " + string(v.State)
}
