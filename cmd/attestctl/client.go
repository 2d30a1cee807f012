package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api/apitypes"
)

// maxResponse bounds what attestctl reads from the attestor.
const maxResponse = 32 << 20

// reply is one HTTP answer.
type reply struct {
	code int
	body []byte
}

// errorText returns the "error" member of a JSON error body, or the body
// itself, shortened.
func (r reply) errorText() string {
	var e apitypes.ErrorResponse
	if json.Unmarshal(r.body, &e) == nil && e.Error != "" {
		return e.Error
	}
	s := strings.TrimSpace(string(r.body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return http.StatusText(r.code)
	}
	return s
}

// requestTimeout is --timeout, or def when unset.
func (a *app) requestTimeout(def time.Duration) time.Duration {
	if a.timeout > 0 {
		return a.timeout
	}
	return def
}

// call sends one request to the attestor and reads the answer. Errors are
// transport errors ("attestor unreachable"), without the URL noise.
func (a *app) call(ctx context.Context, method, path string, header http.Header) (reply, error) {
	base, err := a.baseURL()
	if err != nil {
		return reply{}, err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return reply{}, fmt.Errorf("build request: %w", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "attestctl")
	client := &http.Client{
		// Never follow redirects: a redirect would carry the token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, transportError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return reply{}, fmt.Errorf("read %s answer: %w", path, transportError(err))
	}
	if len(body) > maxResponse {
		return reply{}, fmt.Errorf("%s answer larger than %d bytes", path, maxResponse)
	}
	return reply{code: resp.StatusCode, body: body}, nil
}

func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("no answer before the timeout")
	}
	return err
}

// getJSON GETs path, wants 200 and decodes the body into v; it returns the
// raw body too.
func (a *app) getJSON(ctx context.Context, path string, v any) ([]byte, error) {
	r, err := a.call(ctx, http.MethodGet, path, nil)
	if err != nil {
		return nil, fmt.Errorf("attestor unreachable: %w", err)
	}
	if r.code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", path, r.code, r.errorText())
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return nil, fmt.Errorf("GET %s: answer is not the expected JSON: %w", path, err)
	}
	return r.body, nil
}
