package main

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/evidence"
	"github.com/secure-ai/runtime-attestor/core/identity"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// signedGate polls for a state it can verify: a signed bundle, and TPM
// evidence over a fresh nonce when it has the AK.
type signedGate struct {
	a             *app
	v             *bundleVerifier
	ak            crypto.PublicKey // nil: no evidence asked for
	allowDegraded bool
	pubFile       string
	// verified says what the last trusted answer was verified with: the
	// bundle_signature's algorithm and key id, and the evidence.
	verified string
}

func (a *app) newSignedGate(pubFile, akFile string, maxAge time.Duration, allowDegraded bool) (*signedGate, int) {
	v, code := a.loadVerifier("", pubFile, maxAge)
	if code != exitOK {
		return nil, code
	}
	g := &signedGate{a: a, v: v, allowDegraded: allowDegraded, pubFile: pubFile}
	if akFile != "" {
		raw, err := os.ReadFile(akFile)
		if err != nil {
			return nil, a.fail(exitUsage, "read AK: %v", err)
		}
		if g.ak, err = identity.ParsePublicPEM(raw); err != nil {
			return nil, a.fail(exitUsage, "AK %s: %v", akFile, err)
		}
	}
	return g, exitOK
}

// poll returns the state of a verified answer, or "" and why there is none.
func (g *signedGate) poll(ctx context.Context) (state.State, string) {
	pctx, cancel := context.WithTimeout(ctx, min(g.a.requestTimeout(pollTimeout), pollTimeout))
	defer cancel()
	if g.ak != nil {
		return g.pollEvidence(pctx)
	}
	r, err := g.a.call(pctx, http.MethodGet, "/api/v1/attest", nil)
	if err != nil {
		return "", "attestor unreachable: " + err.Error()
	}
	if r.code != http.StatusOK {
		return "", fmt.Sprintf("unexpected answer from /api/v1/attest: HTTP %d: %s", r.code, clean(r.errorText()))
	}
	var ar apitypes.AttestResponse
	if err := json.Unmarshal(r.body, &ar); err != nil {
		return "", "unexpected answer from /api/v1/attest: not JSON"
	}
	if len(ar.Bundle) == 0 || string(ar.Bundle) == "null" {
		return "", "attestor state is pending (no bundle yet)"
	}
	info, err := g.v.check(ar.Bundle, time.Now())
	if err != nil {
		return "", "answer NOT trusted: " + err.Error()
	}
	g.verified = "bundle_signature " + signatureText(info.Signature) + ", verified with " + g.pubFile
	return stateOf(info.State)
}

func (g *signedGate) pollEvidence(ctx context.Context) (state.State, string) {
	nonce, err := randomNonce()
	if err != nil {
		return "", err.Error()
	}
	r, err := g.a.call(ctx, http.MethodGet, "/api/v1/evidence?nonce="+nonce, nil)
	if err != nil {
		return "", "attestor unreachable: " + err.Error()
	}
	switch r.code {
	case http.StatusOK:
	case http.StatusServiceUnavailable:
		return "", "attestor state is pending (no bundle yet): " + clean(r.errorText())
	default:
		return "", fmt.Sprintf("no evidence from /api/v1/evidence: HTTP %d: %s", r.code, clean(r.errorText()))
	}
	n, _ := evidence.ParseNonce(nonce)
	ev, err := evidence.Verify(r.body, g.ak, n)
	if err != nil {
		return "", "evidence NOT trusted: " + err.Error()
	}
	info, err := g.v.check(ev.Evidence.Bundle, time.Now())
	if err != nil {
		return "", "evidence NOT trusted: " + err.Error()
	}
	g.verified = "TPM quote over a fresh nonce verified with the AK"
	if g.v.pub != nil {
		g.verified = "bundle_signature " + signatureText(info.Signature) + ", verified with " + g.pubFile + "; " + g.verified
	}
	return stateOf(info.State)
}

func stateOf(s string) (state.State, string) {
	st := state.State(s)
	if !st.Valid() {
		return "", fmt.Sprintf("the signed bundle holds no valid state (%q)", clean(s))
	}
	return st, "attestor state is " + s
}
