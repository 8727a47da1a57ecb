package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cuemta/cuemta/config"
	_ "github.com/cuemta/cuemta/internal/golden" // defines -update
)

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("CET", 3600))

// harness is a server on a fake backend with a fixed clock and
// Message-IDs, reached through httptest.
type harness struct {
	t       *testing.T
	fake    *fakeBackend
	srv     *Server
	http    *httptest.Server
	token   string
	mu      sync.Mutex
	actions []ActionEvent
}

func newHarness(t *testing.T, opts ...Option) *harness {
	return newHarnessCfg(t, config.Admin{Addr: "127.0.0.1:0"}, opts...)
}

func newHarnessCfg(t *testing.T, cfg config.Admin, opts ...Option) *harness {
	t.Helper()
	h := &harness{t: t, fake: newFake(), token: cfg.Token}
	n, b := 0, 0
	var idMu sync.Mutex
	base := []Option{
		WithClock(func() time.Time { return testNow }),
		WithMessageIDs(func() string {
			idMu.Lock()
			defer idMu.Unlock()
			n++
			return fmt.Sprintf("<test.%d@mta.example>", n)
		}),
		withBoundaries(func() string {
			idMu.Lock()
			defer idMu.Unlock()
			b++
			return fmt.Sprintf("=_test_boundary_%d", b)
		}),
		OnAction(func(e ActionEvent) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.actions = append(h.actions, e)
		}),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "cuemta_test_total", Help: "A test counter."}))
	srv, err := New(cfg, h.fake, reg, nil, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.http = httptest.NewServer(srv.Handler())
	t.Cleanup(h.http.Close)
	return h
}

func (h *harness) Actions() []ActionEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]ActionEvent(nil), h.actions...)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a map, failing the test when it is not JSON.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

func (h *harness) do(method, path string, body any) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.http.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	if isStateChanging(method) {
		req.Header.Set("Content-Type", "application/json") // as the CLI does
	}
	req.Header.Set(actorHeader, "cli:tester")
	resp, err := h.http.Client().Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, data}
}

// wantError checks a JSON error response with the status and an error
// message containing substr.
func wantError(t *testing.T, r response, status int, substr string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	m := r.json(t)
	msg, _ := m["error"].(string)
	if msg == "" {
		t.Errorf("no error field in %s", r.body)
	}
	if !strings.Contains(msg+fmt.Sprint(m["detail"]), substr) {
		t.Errorf("error %q (detail %v) does not mention %q", msg, m["detail"], substr)
	}
	return m
}

// wantNoCalls checks that the backend was not reached.
func (h *harness) wantNoCalls() {
	h.t.Helper()
	if calls := h.fake.Calls(); len(calls) > 0 {
		h.t.Errorf("backend was called: %v", calls)
	}
	if a := h.Actions(); len(a) > 0 {
		h.t.Errorf("actions were recorded: %+v", a)
	}
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func mustRequest(method, path string) *http.Request { return httptest.NewRequest(method, path, nil) }
