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
	s := start(t, nil, api.Options{Token: []byte(goodToken)})

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
	recs, _ := s.audit.records()
	empty := 0
	for _, r := range recs {
		if r.Data["authorized"] == true {
			t.Errorf("an empty token was audited as authorized: %v", r.Data)
		}
		if strings.Contains(fmt.Sprint(r.Data["reason"]), "empty bearer token") {
			empty++
		}
	}
	if empty != 3 {
		t.Errorf("%d audit records name the empty token, want 3: %v", empty, recs)
	}
}
