package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
	"github.com/secure-ai/runtime-attestor/core/verdict"
)

// refreshAudit is the audit record of one refresh request. It never holds
// the token or any part of it.
type refreshAudit struct {
	Peer       string      `json:"peer"`
	UID        *int        `json:"peer_uid,omitempty"`
	PID        *int        `json:"peer_pid,omitempty"`
	Authorized bool        `json:"authorized"`
	Reason     string      `json:"reason"`
	State      state.State `json:"state"`
}

// peerOfRequest is the peer of r: from its tracked connection, else (a
// caller of Handler() with its own server) its remote address.
func peerOfRequest(r *http.Request) Peer {
	if tc := connOf(r.Context()); tc != nil {
		return tc.peer
	}
	return Peer{Addr: r.RemoteAddr, UID: -1, PID: -1}
}

// stateAnswers are the bodies of /api/v1/verify and /health in one state,
// as c.JSON writes them.
type stateAnswers struct{ verify, health []byte }

// encodeAnswers encodes the bodies of every state: the two endpoints then
// answer from a snapshot's state alone, with bytes made before.
func encodeAnswers() map[state.State]stateAnswers {
	out := map[state.State]stateAnswers{}
	for _, st := range []state.State{state.Pending, state.Attested, state.Degraded, state.Failed} {
		v, verr := json.Marshal(apitypes.VerifyResponse{Verified: st.Verified(), State: st})
		h, herr := json.Marshal(apitypes.HealthResponse{Status: "ok", State: st})
		if verr == nil && herr == nil {
			out[st] = stateAnswers{verify: append(v, '\n'), health: append(h, '\n')}
		}
	}
	return out
}

// answer writes body, encoded before, unless the client asked for
// ?pretty (or echo is in debug mode), which c.JSON indents.
func answer(c echo.Context, code int, body []byte, v any) error {
	if _, pretty := c.QueryParams()["pretty"]; len(body) == 0 || pretty || c.Echo().Debug {
		return c.JSON(code, v)
	}
	return c.Blob(code, echo.MIMEApplicationJSON, body)
}

func (s *Server) health(c echo.Context) error {
	st := s.att.Snapshot().State
	return answer(c, http.StatusOK, s.answers[st].health, apitypes.HealthResponse{Status: "ok", State: st})
}

func (s *Server) verify(c echo.Context) error {
	st := s.att.Snapshot().State
	code := http.StatusServiceUnavailable
	if st.Verified() {
		code = http.StatusOK
	}
	return answer(c, code, s.answers[st].verify, apitypes.VerifyResponse{Verified: st.Verified(), State: st})
}

func (s *Server) attest(c echo.Context) error {
	body, err := s.attestBody(s.att.Snapshot())
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

func (s *Server) status(c echo.Context) error {
	snap := s.att.Snapshot()
	out := apitypes.StatusResponse{
		AttestationState: snap.State,
		TPMAvailable:     snap.TPMAvailable,
		TPMQuoteVerified: snap.TPMQuoteVerified,
		SecureBoot:       snap.SecureBoot,
		PolicyDigest:     snap.PolicyDigest,
		DeploymentDigest: snap.DeploymentDigest,
		ServiceCount:     snap.ServiceCount,
		FailureCount:     snap.FailureCount,
		AttestCount:      snap.AttestCount,
		DegradeCount:     snap.DegradeCount,
		FailCount:        snap.FailCount,
		RefreshCount:     snap.RefreshCount,
		Score:            snap.Score,
		Plugins:          make([]apitypes.PluginReport, 0, len(snap.Plugins)),
		Latched:          latchReport(snap.Latched),
	}
	if !snap.LastAttested.IsZero() {
		t := snap.LastAttested.UTC().Format(time.RFC3339)
		out.LastAttested = &t
	}
	if snap.AuditLastHash != "" {
		seq, hash := snap.AuditLastSeq, snap.AuditLastHash
		out.AuditLastSeq, out.AuditLastHash = &seq, &hash
	}
	out.VerdictMeasurement = verdict.Status{Reason: "verdicts are not measured: no evidence TPM is configured"}
	if s.id.Verdicts != nil {
		out.VerdictMeasurement = s.id.Verdicts.Status()
	}
	for _, p := range snap.Plugins {
		out.Plugins = append(out.Plugins, apitypes.PluginReport{
			Name:            p.Name,
			Version:         p.Version,
			DurationSeconds: p.Duration.Seconds(),
			Fault:           p.Fault,
			FaultCount:      p.FaultCount,
			Findings:        p.Findings,
			Confinement:     p.Confinement,
		})
	}
	return c.JSON(http.StatusOK, out)
}

// refresh is POST /api/v1/refresh: bearer token, then one shared
// attestation. An authorized request is audited once, with its outcome; a
// refused one is counted into its peer's coalesced refresh_refused record.
func (s *Server) refresh(c echo.Context) error {
	r := c.Request()
	peer := peerOfRequest(r)
	want := s.token.Load()
	if want == nil {
		s.refreshForbidden.Add(1)
		s.refused.add(peer, "refresh disabled: no api token configured")
		return echo.NewHTTPError(http.StatusForbidden, "refresh is disabled: the attestor has no api token configured")
	}
	if reason := checkBearer(r.Header.Values(echo.HeaderAuthorization), want); reason != "" {
		s.refreshUnauthorized.Add(1)
		s.refused.add(peer, reason)
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="runtime-attestor"`)
		return echo.NewHTTPError(http.StatusUnauthorized, "unauthorized: "+reason)
	}
	s.refreshAuthorized.Add(1)
	// The body is read only now, after the token check: an anonymous
	// client's body is never read.
	if err := checkRefreshBody(r); err != nil {
		msg := err.Error()
		var he *echo.HTTPError
		if errors.As(err, &he) {
			msg = fmt.Sprint(he.Message)
		}
		s.auditRefresh(peer, true, "bad request: "+msg, s.att.Snapshot().State)
		return err
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.refreshTimeout)
	defer cancel()
	snap, err := s.att.Refresh(ctx)
	if err != nil {
		code, msg := http.StatusServiceUnavailable, "refresh failed: "+err.Error()
		switch {
		case s.baseCtx.Err() != nil:
			msg = "refresh abandoned: the attestor is shutting down"
		case errors.Is(err, context.DeadlineExceeded):
			code, msg = http.StatusGatewayTimeout, fmt.Sprintf("refresh did not finish within %s", s.refreshTimeout)
		}
		cur := s.att.Snapshot().State
		s.auditRefresh(peer, true, msg, cur)
		return c.JSON(code, apitypes.ErrorResponse{Error: msg, State: cur})
	}
	s.auditRefresh(peer, true, "refreshed", snap.State)
	body, err := s.attestBody(snap)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, body)
}

// checkRefreshBody accepts no body, a blank one or an empty JSON object of
// at most MaxBodyBytes: refresh takes no parameters. Its errors are
// *echo.HTTPError (400 or 413).
func checkRefreshBody(r *http.Request) error {
	raw, err := readBody(r)
	if err != nil {
		return err
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return echo.NewHTTPError(http.StatusBadRequest, "request body must be empty or an empty JSON object")
	}
	if len(obj) != 0 {
		return echo.NewHTTPError(http.StatusBadRequest, "refresh takes no parameters")
	}
	return nil
}

func (s *Server) auditRefresh(peer Peer, authorized bool, reason string, st state.State) {
	if s.audit == nil {
		return
	}
	rec := refreshAudit{Peer: peer.String(), Authorized: authorized, Reason: reason, State: st}
	if peer.unix {
		uid, pid := peer.UID, peer.PID
		rec.UID, rec.PID = &uid, &pid
	}
	if err := s.audit.Append("refresh", rec); err != nil {
		s.log.Warn("could not audit a refresh request", "peer", rec.Peer, "authorized", authorized, "error", err)
	}
}

// attestBody is an encoded /api/v1/attest response, cached per snapshot.
type attestBody struct {
	state  state.State
	bundle json.RawMessage // the snapshot's slice: identity of the cache entry
	body   []byte
}

// attestBody returns {"state":...,"bundle":...} with the bundle bytes
// verbatim (json.Marshal would compact them and break the signature for
// anyone who verifies the raw bytes).
func (s *Server) attestBody(snap engine.Snapshot) ([]byte, error) {
	if c := s.cache.Load(); c != nil && c.state == snap.State && sameSlice(c.bundle, snap.Bundle) {
		return c.body, nil
	}
	st, err := json.Marshal(snap.State)
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	bundle := bytes.TrimSpace(snap.Bundle)
	if len(bundle) == 0 {
		bundle = []byte("null")
	} else if !json.Valid(bundle) {
		return nil, fmt.Errorf("snapshot bundle is not valid JSON (%d bytes)", len(snap.Bundle))
	}
	body := make([]byte, 0, len(st)+len(bundle)+24)
	body = append(body, `{"state":`...)
	body = append(body, st...)
	body = append(body, `,"bundle":`...)
	body = append(body, bundle...)
	body = append(body, "}\n"...)
	s.cache.Store(&attestBody{state: snap.State, bundle: snap.Bundle, body: body})
	return body, nil
}

// sameSlice reports whether a and b are the same bytes in memory. The cache
// entry keeps its slice alive, so its address cannot be reused by another
// bundle.
func sameSlice(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 {
		return true
	}
	return &a[0] == &b[0]
}
