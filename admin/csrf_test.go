package admin

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
)

// browserRequest sends a request the way a browser would for a page:
// headers exactly as given, no token.
func (h *harness) browserRequest(method, path, host string, header map[string]string, body string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.http.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.http.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, data}
}

// TestBrowserRequestsRefused sends what a web page can send to the API on
// 127.0.0.1 without a preflight: each is refused and the backend sees no
// call.
func TestBrowserRequestsRefused(t *testing.T) {
	const inject = `{"envelope_sender": "a@example.com", "recipients": [{"email": "b@example.com"}], "content": "Subject: x\r\n\r\nx"}`
	form := "envelope_sender=a%40example.com"
	multipart := "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n" + inject + "\r\n--b--\r\n"
	tests := []struct {
		name         string
		method, path string
		host         string
		header       map[string]string
		body         string
		status       int
		why          string
	}{
		{"form text/plain from a foreign Origin", "POST", "/api/inject/v1", "",
			map[string]string{"Origin": "https://evil.example", "Content-Type": "text/plain"}, inject, 403, "Origin"},
		{"form urlencoded from a foreign Origin", "POST", "/api/v1/reload", "",
			map[string]string{"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"}, form, 403, "Origin"},
		{"form multipart from a foreign Origin", "POST", "/api/v1/suspensions", "",
			map[string]string{"Origin": "http://evil.example:8080", "Content-Type": "multipart/form-data; boundary=b"}, multipart, 403, "Origin"},
		{"JSON from a foreign Origin", "POST", "/api/v1/reload", "",
			map[string]string{"Origin": "https://evil.example", "Content-Type": "application/json"}, "{}", 403, "Origin"},
		{"null Origin (sandboxed frame)", "DELETE", "/api/v1/messages/m1", "",
			map[string]string{"Origin": "null", "Content-Type": "application/json"}, "", 403, "Origin"},
		{"cross-origin GET", "GET", "/api/v1/status", "",
			map[string]string{"Origin": "https://evil.example"}, "", 403, "Origin"},
		// DNS rebinding: evil.example now resolves to 127.0.0.1, so the
		// page is same-origin and sends no Origin on a simple request.
		{"simple POST with a rebound Host", "POST", "/api/v1/reload", "evil.example:8025",
			map[string]string{"Content-Type": "text/plain"}, "{}", 403, "Host"},
		{"JSON POST with a rebound Host", "POST", "/api/inject/v1", "evil.example:8025",
			map[string]string{"Content-Type": "application/json"}, inject, 403, "Host"},
		{"rebound Host on DELETE", "DELETE", "/api/v1/suspensions/site/outlook", "evil.example",
			map[string]string{"Content-Type": "application/json"}, "", 403, "Host"},
		// fetch(url, {mode: "no-cors", method: "POST", body}) from a page
		// served on loopback itself: a CORS-safelisted type only, and
		// Origin is loopback so only the content type stops it.
		{"fetch no-cors text/plain", "POST", "/api/inject/v1", "",
			map[string]string{"Origin": "http://127.0.0.1:3000", "Content-Type": "text/plain;charset=UTF-8", "Sec-Fetch-Mode": "no-cors"}, inject, 415, "application/json"},
		{"fetch no-cors without a type", "POST", "/api/v1/messages/m1/retry", "",
			map[string]string{"Sec-Fetch-Mode": "no-cors"}, "", 415, "application/json"},
		{"form POST from loopback page", "POST", "/api/v1/messages/m1/bounce", "",
			map[string]string{"Origin": "http://localhost:8000", "Content-Type": "application/x-www-form-urlencoded"}, "reason=x", 415, "application/json"},
		{"JSON lookalike type", "POST", "/api/v1/reload", "",
			map[string]string{"Content-Type": "text/plain; x=application/json"}, "{}", 415, "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			wantError(t, h.browserRequest(tt.method, tt.path, tt.host, tt.header, tt.body), tt.status, tt.why)
			h.wantNoCalls()
		})
	}
}

// TestBrowserRequestsRefusedWithToken: with a token a foreign Origin is
// still refused, even carrying the token.
func TestBrowserRequestsRefusedWithToken(t *testing.T) {
	h := newHarnessCfg(t, config.Admin{Addr: "127.0.0.1:0", Token: "s3cret"})
	r := h.browserRequest("POST", "/api/v1/reload", "", map[string]string{
		"Origin": "https://evil.example", "Content-Type": "application/json", "Authorization": "Bearer s3cret"}, "{}")
	wantError(t, r, 403, "Origin")
	// The token replaces the Host and Content-Type checks: a remote CLI
	// reaches the API by a non-loopback name.
	r = h.browserRequest("POST", "/api/v1/reload", "mta.internal:8025", map[string]string{"Authorization": "Bearer s3cret"}, "")
	if r.status != 200 {
		t.Errorf("token holder with a non-loopback Host: %d %s", r.status, r.body)
	}
}

// TestLocalClientsAccepted: what the CLI and curl on the host send.
func TestLocalClientsAccepted(t *testing.T) {
	for _, tt := range []struct{ host, ct, origin string }{
		{"", "application/json", ""},
		{"localhost:8025", "application/json; charset=utf-8", ""},
		{"localhost", "application/json", ""},
		{"127.0.0.2:8025", "Application/JSON", ""},
		{"[::1]:8025", "application/json", ""},
		{"[::1]", "application/json", "http://[::1]:8025"},
		{"", "application/json", "http://127.0.0.1:8025"},
	} {
		h := newHarness(t)
		hdr := map[string]string{"Content-Type": tt.ct}
		if tt.origin != "" {
			hdr["Origin"] = tt.origin
		}
		if r := h.browserRequest("POST", "/api/v1/reload", tt.host, hdr, ""); r.status != 200 {
			t.Errorf("Host %q, Content-Type %q, Origin %q: %d %s", tt.host, tt.ct, tt.origin, r.status, r.body)
		}
	}
}

// TestProbesOpenWithToken: Kubernetes probes and a local Prometheus need
// no token; /metrics does when the listener is not on loopback.
func TestProbesOpenWithToken(t *testing.T) {
	h := newHarnessCfg(t, config.Admin{Addr: "127.0.0.1:0", Token: "s3cret"})
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := h.browserRequest("GET", path, "", nil, ""); r.status != 200 {
			t.Errorf("%s without the token on loopback: %d %s", path, r.status, r.body)
		}
	}
	if r := h.browserRequest("POST", "/healthz", "", map[string]string{"Content-Type": "application/json"}, ""); r.status != 401 {
		t.Errorf("POST /healthz without the token: %d", r.status)
	}

	remote := newHarnessCfg(t, config.Admin{Addr: "0.0.0.0:0", Token: "s3cret"})
	if r := remote.browserRequest("GET", "/healthz", "", nil, ""); r.status != 200 {
		t.Errorf("/healthz without the token off loopback: %d", r.status)
	}
	wantError(t, remote.browserRequest("GET", "/metrics", "", nil, ""), 401, "bearer token")
	remote.fake.mu.Lock()
	remote.fake.ready, remote.fake.notReady = false, [2]string{"spool low", "1000 bytes free"}
	remote.fake.mu.Unlock()
	r := remote.browserRequest("GET", "/readyz", "", nil, "")
	m := wantError(t, r, 503, "not ready")
	if strings.Contains(string(r.body), "1000 bytes") || m["detail"] != nil {
		t.Errorf("/readyz without the token off loopback tells why: %s", r.body)
	}
}
