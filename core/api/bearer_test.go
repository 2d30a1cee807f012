package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/secure-ai/runtime-attestor/core/api"
)

// TestEmptyBearerRefused: a bearer scheme with nothing after it is refused
// as an empty token, whether net/http trimmed the header (a real socket)
// or a caller of Handler() passes it on as sent.
func TestEmptyBearerRefused(t *testing.T) {
	t.Parallel()
	s := start(t, nil, api.Options{Token: []byte(goodToken), NoiseInterval: 10 * time.Millisecond})

	// Over the socket: the raw bytes a client sends.
	for i, value := range []string{"Bearer", "Bearer    ", "Bearer \t ", "bearer\t"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(conn, "POST /api/v1/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", value)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("Test %d: %q: %v", i, value, err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Test %d: Authorization %q over a socket: %d, want 401", i, value, resp.StatusCode)
		}
	}

	// Through Handler(), the value untrimmed.
	for i, value := range []string{"Bearer    ", "Bearer \t", "Bearer  \t  "} {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/refresh", nil)
		req.Host = "127.0.0.1"
		req.Header.Set("Authorization", value)
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "empty bearer token") {
			t.Errorf("Test %d: Authorization %q through Handler(): %d %s, want 401 empty bearer token", i, value, w.Code, w.Body)
		}
	}
	if runs, _, _ := s.att.Stats(); runs != 0 {
		t.Errorf("%d attestations ran for empty tokens", runs)
	}
	// Those through Handler() have no tracked connection: their peer is
	// the request's RemoteAddr (httptest's 192.0.2.1).
	deadline := time.Now().Add(30 * time.Second)
	for {
		empty := 0.0
		recs, _ := s.audit.records()
		for _, r := range recs {
			if r.Type != api.TypeRefreshRefused {
				t.Errorf("an empty token was audited as %s: %v", r.Type, r.Data)
			}
			reasons, _ := r.Data["reasons"].(map[string]any)
			if n, ok := reasons["malformed authorization header: empty bearer token"].(float64); ok {
				empty += n
			}
		}
		if empty == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v refusals audited as an empty token, want 3: %v", empty, recs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
