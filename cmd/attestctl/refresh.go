package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/bundle"
)

// refreshTimeout is the default wait for a refresh: the daemon's own limit
// (90s by default) and some.
const refreshTimeout = 100 * time.Second

func (a *app) refresh(args []string) int {
	fs := a.flagSet("refresh", "--token-file FILE",
		"Asks the attestor to attest now (POST /api/v1/refresh) and prints the new state.\n"+
			"The token is the content of the attestor's api_token_path file (white space\n"+
			"around it is ignored). Exit 0 when the attestation ran, whatever its state.")
	tokenFile := fs.String("token-file", "", "file holding the API bearer token (required)")
	a.clientFlags(fs, refreshTimeout)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return a.usageError(fs, "refresh takes no arguments")
	}
	if *tokenFile == "" {
		return a.usageError(fs, "--token-file is required")
	}
	if _, err := a.baseURL(); err != nil {
		return a.usageError(fs, "%v", err)
	}
	raw, err := os.ReadFile(*tokenFile)
	if err != nil {
		return a.fail(exitUsage, "read token: %v", err)
	}
	if err := apitypes.ValidateToken(raw); err != nil {
		return a.fail(exitUsage, "token file %s: %v", *tokenFile, err)
	}
	tok := bytes.TrimSpace(raw)

	ctx, cancel := context.WithTimeout(context.Background(), a.requestTimeout(refreshTimeout))
	defer cancel()
	r, err := a.call(ctx, http.MethodPost, "/api/v1/refresh", http.Header{"Authorization": {"Bearer " + string(tok)}})
	if err != nil {
		return a.fail(exitFail, "refresh: attestor unreachable: %v", err)
	}
	switch r.code {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return a.fail(exitFail, "refresh refused (401 Unauthorized): the attestor did not accept the token in %s (%s)", *tokenFile, r.errorText())
	case http.StatusForbidden:
		return a.fail(exitFail, "refresh refused (403 Forbidden): the attestor has no API token configured (api_token_path in its policy), so refresh is disabled")
	default:
		return a.fail(exitFail, "refresh failed (HTTP %d): %s", r.code, r.errorText())
	}
	var resp apitypes.AttestResponse
	if err := json.Unmarshal(r.body, &resp); err != nil {
		return a.fail(exitFail, "refresh: answer is not the expected JSON: %v", err)
	}
	line := fmt.Sprintf("refreshed: state %s", resp.State)
	var b bundle.Bundle
	if len(resp.Bundle) > 0 && json.Unmarshal(resp.Bundle, &b) == nil && b.Sequence > 0 {
		line += fmt.Sprintf(" (attestation %d at %s, score %d)", b.Sequence, b.Timestamp, b.Score)
	}
	fmt.Fprintln(a.stdout, line)
	return exitOK
}
