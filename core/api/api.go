package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/secure-ai/runtime-attestor/core/engine"
	"github.com/secure-ai/runtime-attestor/core/state"
)

// Attestor is what the API serves: the engine.
type Attestor interface {
	Snapshot() engine.Snapshot
	// Refresh runs (or joins the already running) attestation and returns the snapshot it produced.
	// Concurrent callers share one attestation.
	Refresh(ctx context.Context) (engine.Snapshot, error)
}

// Options configure a Server.
type Options struct {
	Attestor Attestor
	Audit    engine.Auditor // refresh requests are audited here (may be nil in tests)
	Token    []byte         // bearer token for POST /api/v1/refresh; nil/empty = refresh refused (403), never open
	Logger   hclog.Logger   // nil: no logging
	// MaxConns bounds the connections open at once per listener (default
	// 1024) and MaxConnsPerPeer those of one peer (default 32): past either,
	// the oldest connection that runs no handler is closed to make room
	// (see fairListener).
	MaxConns        int
	MaxConnsPerPeer int
	// NoiseInterval is the window over which refused refresh requests are
	// coalesced into one refresh_refused record per peer (default 1m), and
	// NoisePeers how many peers are told apart per window (default 64).
	NoiseInterval time.Duration
	NoisePeers    int
	// RefreshTimeout is how long a refresh request may wait; default 90s.
	RefreshTimeout time.Duration
	// Identity serves GET /api/v1/ak, /api/v1/evidence and /api/v1/ear
	// (evidence.go); zero: those answer 409.
	Identity Identity
}

// Defaults and limits.
const (
	DefaultMaxConns        = 1024
	DefaultMaxConnsPerPeer = 32
	DefaultRefreshTimeout  = 90 * time.Second
	// MaxBodyBytes is the largest request body accepted (413 above).
	MaxBodyBytes = 1 << 10
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes = 8 << 10

	refreshPath = "/api/v1/refresh"

	// Short, so that a held connection costs little: a local client sends
	// its request at once, and a keep-alive one that waits longer simply
	// reconnects.
	readHeaderTimeout = 2 * time.Second
	readTimeout       = 5 * time.Second
	idleTimeout       = 10 * time.Second
)

// Server is the HTTP API.
type Server struct {
	att            Attestor
	audit          engine.Auditor
	log            hclog.Logger
	refreshTimeout time.Duration
	maxConns       int
	perPeer        int
	refused        *refusals

	// token holds the SHA-256 digest of the bearer token; nil when none is
	// configured. The token itself is not kept.
	token atomic.Pointer[[sha256.Size]byte]
	// cache is the last encoded /api/v1/attest body.
	cache atomic.Pointer[attestBody]
	// answers are the /api/v1/verify and /health bodies of each state,
	// encoded once.
	answers map[state.State]stateAnswers

	refreshAuthorized, refreshUnauthorized, refreshForbidden atomic.Uint64

	id            Identity
	evidenceCount evidenceCounters

	echo       *echo.Echo
	http       *http.Server
	baseCtx    context.Context
	cancelBase context.CancelFunc
}

// New returns a Server for opts. It panics if opts.Attestor is nil (a
// programmer error).
func New(opts Options) *Server {
	if opts.Attestor == nil {
		panic("api.New: nil Attestor")
	}
	s := &Server{
		att:            opts.Attestor,
		audit:          opts.Audit,
		log:            opts.Logger,
		refreshTimeout: opts.RefreshTimeout,
		maxConns:       opts.MaxConns,
		id:             opts.Identity,
		perPeer:        opts.MaxConnsPerPeer,
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	s.answers = encodeAnswers()
	if s.refreshTimeout <= 0 {
		s.refreshTimeout = DefaultRefreshTimeout
	}
	if s.maxConns <= 0 {
		s.maxConns = DefaultMaxConns
	}
	if s.perPeer <= 0 {
		s.perPeer = DefaultMaxConnsPerPeer
	}
	s.refused = newRefusals(opts.Audit, s.log, opts.NoiseInterval, opts.NoisePeers)
	s.SetToken(opts.Token)
	s.baseCtx, s.cancelBase = context.WithCancel(context.Background())

	s.echo = s.newEcho()
	s.http = &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      s.refreshTimeout + 10*time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          s.log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		BaseContext:       func(net.Listener) context.Context { return s.baseCtx },
		ConnContext:       withConn,
		ConnState:         connStateHook,
	}
	return s
}

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Logger.SetOutput(io.Discard)
	e.HTTPErrorHandler = s.handleError

	e.Pre(s.logRequests, checkHost)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		DisableStackAll: true,
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			s.log.Error("handler panicked", "method", c.Request().Method, "path", c.Request().URL.EscapedPath(),
				"error", err, "stack", string(stack))
			return echo.NewHTTPError(http.StatusInternalServerError, "internal error")
		},
	}))
	e.Use(secureHeaders)
	e.Use(limitBody)
	e.Use(markBusy)

	read := func(path string, h echo.HandlerFunc) {
		e.GET(path, h)
		e.HEAD(path, h)
	}
	read("/health", s.health)
	read("/api/v1/attest", s.attest)
	read("/api/v1/verify", s.verify)
	read("/api/security/status", s.status)
	read("/metrics", s.metricsHandler())
	e.POST(refreshPath, s.refresh)
	s.evidenceRoutes(e)
	return e
}

// SetToken replaces the refresh bearer token atomically (on policy reload).
// Leading and trailing white space is ignored (a header cannot carry it);
// nil, empty or blank disables refresh (403).
func (s *Server) SetToken(tok []byte) {
	tok = bytes.TrimSpace(tok)
	if len(tok) == 0 {
		s.token.Store(nil)
		return
	}
	d := sha256.Sum256(tok)
	s.token.Store(&d)
}

// Serve accepts connections on ln until Shutdown, admitting them fairly
// (Options.MaxConns, Options.MaxConnsPerPeer). It may be called for
// several listeners at once (a TCP port and a Unix socket). It returns nil
// after Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(newFairListener(ln, s.maxConns, s.perPeer))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections, cancels refresh requests that are
// waiting and waits for the requests in flight to finish or ctx to end.
// The refused requests still being coalesced are written first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancelBase()
	err := s.http.Shutdown(ctx)
	s.refused.close()
	return err
}

// Handler returns the API as an http.Handler (for benchmarks and tests that
// bring their own server).
func (s *Server) Handler() http.Handler { return s.echo }

func (s *Server) metricsHandler() echo.HandlerFunc {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(
		newCollector(s),
		newEvidenceCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      s.log.Named("metrics").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return echo.WrapHandler(h)
}
