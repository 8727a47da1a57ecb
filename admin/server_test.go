package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/smtpreply"
)

func TestNewRefusesOpenAddressWithoutToken(t *testing.T) {
	for _, c := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8025", "", true},
		{"[::1]:8025", "", true},
		{"localhost:8025", "", true},
		{"0.0.0.0:8025", "", false},
		{":8025", "", false},
		{"192.0.2.1:8025", "", false},
		{"0.0.0.0:8025", "secret", true},
		{"no-port", "", false},
	} {
		_, err := New(config.Admin{Addr: c.addr, Token: c.token}, newFake(), nil, nil)
		if (err == nil) != c.ok {
			t.Errorf("New(%q, token %q): err = %v, want ok=%v", c.addr, c.token, err, c.ok)
		}
	}
	if _, err := New(config.Admin{Addr: "127.0.0.1:1"}, nil, nil, nil); err == nil {
		t.Error("New without a backend succeeded")
	}
}

func TestServeAndShutdown(t *testing.T) {
	srv, err := New(config.Admin{Addr: "127.0.0.1:0"}, newFake(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Addr() != addr && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if srv.Addr() != addr {
		t.Fatalf("Addr() = %q, want %q", srv.Addr(), addr)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("healthz: %d %q", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve after Shutdown = %v, want nil", err)
	}
	if srv.http.ReadHeaderTimeout == 0 || srv.http.ReadTimeout == 0 || srv.http.WriteTimeout == 0 || srv.http.IdleTimeout == 0 {
		t.Error("a server timeout is unset")
	}
}

func TestServeRefusesOpenListenerWithoutToken(t *testing.T) {
	srv, err := New(config.Admin{Addr: "127.0.0.1:0"}, newFake(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skip("cannot listen on 0.0.0.0:", err)
	}
	if err := srv.Serve(ln); err == nil || !strings.Contains(err.Error(), "token") {
		t.Errorf("Serve on 0.0.0.0 without token: %v", err)
	}
}

func TestListenAndServeError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv, err := New(config.Admin{Addr: ln.Addr().String()}, newFake(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenAndServe(); err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Errorf("ListenAndServe on a busy port: %v", err)
	}
}

func TestTokenRequired(t *testing.T) {
	h := newHarnessCfg(t, config.Admin{Addr: "127.0.0.1:0", Token: "s3cret"})
	for _, auth := range []string{"", "Bearer wrong", "Basic czNjcmV0", "Bearer", "Bearer s3cret-and-more", "s3cret"} {
		for _, path := range []string{"/api/v1/status", "/api/v1/queue", "/api/v1/messages/m1/retry", "/api/v1/reload", "/nowhere"} {
			method := "GET"
			if strings.HasSuffix(path, "retry") {
				method = "POST"
			}
			req, _ := http.NewRequest(method, h.http.URL+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := response{resp.StatusCode, resp.Header, body}
			wantError(t, r, http.StatusUnauthorized, "bearer token")
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("no WWW-Authenticate: Bearer on 401")
			}
		}
	}
	h.wantNoCalls()

	r := h.do("GET", "/api/v1/status", nil) // with the token
	if r.status != 200 {
		t.Errorf("with the token: %d %s", r.status, r.body)
	}
	req, _ := http.NewRequest("GET", h.http.URL+"/api/v1/status", nil)
	req.Header.Set("Authorization", "bearer s3cret") // the scheme is case-insensitive
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("lower-case bearer: %d", resp.StatusCode)
	}
}

func TestUnknownEndpointAndMethod(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("GET", "/api/v2/nothing", nil), http.StatusNotFound, "no such endpoint")
	r := h.do("PUT", "/api/v1/suspensions", nil)
	wantError(t, r, http.StatusMethodNotAllowed, "not allowed")
	if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow = %q", allow)
	}
	wantError(t, h.do("GET", "/api/inject/v1", nil), http.StatusMethodNotAllowed, "POST")
	h.wantNoCalls()
}

func TestPanicIsJSON500(t *testing.T) {
	h := newHarness(t)
	h.fake.panicOn = "Status"
	wantError(t, h.do("GET", "/api/v1/status", nil), http.StatusInternalServerError, "internal error")
}

// TestReadyButDegraded: a backend that is degraded (a cluster node on its
// fallback share) is still ready: 200, with the reason and detail, and
// the X-Cuemta-Degraded header.
func TestReadyButDegraded(t *testing.T) {
	h := newHarness(t)
	h.fake.mu.Lock()
	h.fake.degraded = [2]string{"cluster redis unreachable", "3 nodes last seen"}
	h.fake.mu.Unlock()
	r := h.do("GET", "/readyz", nil)
	if r.status != 200 || string(r.body) != "ready, degraded: cluster redis unreachable\n3 nodes last seen\n" {
		t.Errorf("readyz degraded: %d %q", r.status, r.body)
	}
	if got := r.header.Get("X-Cuemta-Degraded"); got != "cluster redis unreachable" {
		t.Errorf("X-Cuemta-Degraded = %q", got)
	}
	h.fake.mu.Lock()
	h.fake.degraded = [2]string{}
	h.fake.mu.Unlock()
	if r := h.do("GET", "/readyz", nil); r.status != 200 || string(r.body) != "ready\n" {
		t.Errorf("readyz no longer degraded: %d %q", r.status, r.body)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t)
	if r := h.do("GET", "/healthz", nil); r.status != 200 || string(r.body) != "ok\n" {
		t.Errorf("healthz: %d %q", r.status, r.body)
	}
	if r := h.do("GET", "/readyz", nil); r.status != 200 {
		t.Errorf("readyz when ready: %d %s", r.status, r.body)
	}
	h.fake.mu.Lock()
	h.fake.ready = false
	h.fake.mu.Unlock()
	wantError(t, h.do("GET", "/readyz", nil), http.StatusServiceUnavailable, "not ready")
	if r := h.do("GET", "/healthz", nil); r.status != 200 {
		t.Errorf("healthz must not depend on readiness: %d", r.status)
	}
	// A backend that says why: the reason is in the error, the detail too.
	h.fake.mu.Lock()
	h.fake.notReady = [2]string{"the spool is low on disk space", "1000 bytes free, 4194304 reserved"}
	h.fake.mu.Unlock()
	m := wantError(t, h.do("GET", "/readyz", nil), http.StatusServiceUnavailable, "1000 bytes free")
	if m["error"] != "not ready: the spool is low on disk space" {
		t.Errorf("readyz error %q", m["error"])
	}
	h.fake.mu.Lock()
	h.fake.ready = true
	h.fake.mu.Unlock()
	if r := h.do("GET", "/readyz", nil); r.status != 200 {
		t.Errorf("readyz when ready again: %d %s", r.status, r.body)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/metrics", nil)
	if r.status != 200 || !strings.Contains(string(r.body), "cuemta_test_total 0") {
		t.Errorf("metrics: %d\n%s", r.status, r.body)
	}
	srv, err := New(config.Admin{Addr: "127.0.0.1:0"}, newFake(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	srv.Handler().ServeHTTP(rec, mustRequest("GET", "/metrics"))
	if rec.Code != http.StatusNotFound {
		t.Errorf("metrics without a registry: %d", rec.Code)
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{ErrNotFound, 404},
		{errors.Join(errors.New("x"), ErrNotFound), 404},
		{Refusal(smtpreply.New(550, "", "no")), 422},
		{Refusal(smtpreply.New(451, "", "later")), 503},
		{BadRequest("bad key"), 400},
		{context.Canceled, 503},
		{errors.New("disk on fire"), 500},
	} {
		if got, _ := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if s := (Refusal(smtpreply.New(550, "5.7.1", "rejected"))).Error(); s != "550 5.7.1 rejected" {
		t.Errorf("RequestError.Error() = %q", s)
	}
	// The detail of an error reply names the SMTP code as a code.
	for err, want := range map[*RequestError]string{
		Refusal(smtpreply.New(550, "5.7.1", "rejected")): `{"code":550,"enhanced":"5.7.1","message":"rejected"}`,
		BadRequest("bad key"):                            `{"message":"bad key"}`,
	} {
		if b, _ := json.Marshal(err); string(b) != want {
			t.Errorf("detail %s, want %s", b, want)
		}
	}
}
