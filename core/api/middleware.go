package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
)

// logRequests logs every request at debug level: method, path, status,
// size, peer and duration. Headers (Authorization above all) are never
// logged. It hands errors to the error handler itself so that the status it
// logs is the one sent.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		if s.log.IsDebug() {
			r, w := c.Request(), c.Response()
			s.log.Debug("request", "method", r.Method, "path", r.URL.EscapedPath(), "status", w.Status,
				"bytes", w.Size, "peer", r.RemoteAddr, "duration", time.Since(start))
		}
		return nil
	}
}

// secureHeaders marks every response as not cacheable and not sniffable.
func secureHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set(echo.HeaderXContentTypeOptions, "nosniff")
		return next(c)
	}
}

// checkHost answers 421 to a request that arrived on a loopback listener
// but names another host: a page in a browser on this machine whose name
// was rebound to 127.0.0.1 (DNS rebinding) must not read the API. Loopback
// names and addresses (with any port) pass, and so does a request without
// a Host (HTTP/1.0; browsers always send one).
func checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if tc := connOf(r.Context()); tc != nil && tc.peer.Loopback && !tc.peer.unix && !loopbackHost(r.Host) {
			return echo.NewHTTPError(http.StatusMisdirectedRequest,
				"misdirected request: this attestor answers only to a loopback name or address (localhost, 127.0.0.1, [::1])")
		}
		return next(c)
	}
}

// loopbackHost reports whether a Host header names the loopback.
func loopbackHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// markBusy marks the request's connection as running a handler, so that
// the fair listener never closes it to make room. It runs after the body
// was read (limitBody), so a client that trickles a body is not protected.
func markBusy(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if tc := connOf(c.Request().Context()); tc != nil {
			tc.l.setBusy(tc, 1)
			defer tc.l.setBusy(tc, -1)
		}
		return next(c)
	}
}

var errBodyTooLarge = echo.NewHTTPError(http.StatusRequestEntityTooLarge, "request body too large (limit 1 KiB)")

// limitBody refuses bodies over MaxBodyBytes, declared or not, on every
// route but POST /api/v1/refresh, which checks its token before it reads the
// body (so that the refusal is audited and an anonymous body is never read).
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.Method == http.MethodPost && c.Path() == refreshPath {
			return next(c)
		}
		if _, err := readBody(r); err != nil {
			return err
		}
		return next(c)
	}
}

// readBody reads the request body, at most MaxBodyBytes, and puts it back
// for whoever reads it next. Its errors are *echo.HTTPError (400 or 413).
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errBodyTooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "could not read the request body")
	}
	if len(raw) > MaxBodyBytes {
		return nil, errBodyTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return raw, nil
}

// checkBearer checks the Authorization header values against the digest of
// the configured token and returns "" when they match, else why not. The
// digests are compared in constant time, so neither the token's content nor
// its length leaks through timing.
func checkBearer(values []string, want *[sha256.Size]byte) string {
	switch {
	case len(values) == 0:
		return "missing bearer token"
	case len(values) > 1:
		return "malformed authorization header: more than one"
	}
	scheme, tok, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "malformed authorization header: not a bearer token"
	}
	// net/http trims the value's ends, but a caller of Handler() (a
	// proxy, a test, another server) may hand it over as sent.
	tok = strings.Trim(tok, " \t")
	if tok == "" {
		return "malformed authorization header: empty bearer token"
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return "malformed authorization header: bearer token has a space or a non-printable byte"
		}
	}
	got := sha256.Sum256([]byte(tok))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return "wrong token"
	}
	return ""
}

// handleError writes every error as {"error": "..."} with its status.
// Errors that are not *echo.HTTPError are logged and answered with 500.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		msg = http.StatusText(code)
		if m, ok := he.Message.(string); ok && m != "" {
			msg = m
		}
		if msg == http.StatusText(code) {
			msg = strings.ToLower(msg)
		}
	} else {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.EscapedPath(), "error", err)
	}
	if err := c.JSON(code, apitypes.ErrorResponse{Error: msg}); err != nil {
		s.log.Debug("could not write an error response", "error", err)
	}
}
