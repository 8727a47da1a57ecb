package admin

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

// get sends a GET with an optional Host and token, no other header.
func (h *harness) get(path, host, token string) response {
	h.t.Helper()
	req, err := http.NewRequest("GET", h.http.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
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

func consoleHarness(t *testing.T, addr, token string) *harness {
	h := newHarnessCfg(t, config.Admin{Addr: addr, Token: token})
	h.fake.console = &Console{Time: testNow, Generation: 7, QueueSize: 42, Connections: 3,
		Throughput: Throughput{Start: testNow.Unix() - 1, Received: []float64{60, 60}, Delivered: []float64{30, 30}},
		Sites:      []ConsoleSite{{Site: "gmail-smtp-in.l.google.com", Provider: "google", Queued: 40, Oldest: 3600, Connections: 3, Delivered: 0.5}},
		Providers: []ConsoleGroup{{Provider: "google", Sites: 1, Queued: 40, Oldest: 3600, Connections: 3, Delivered: 0.5,
			Classes: map[string]int{"421 4.7.28": 40}, TopDeferrals: []TextCount{{Text: "421 4.7.28 <b>slow down</b>", Count: 40}}}},
		Suspensions:      []Suspension{{Scope: "provider", Key: "google/ip1", Until: testNow.Add(90 * time.Minute), Reason: "blocked", Origin: "google-block"}},
		LastReloadErrors: []string{"main.cue:3:1: bad"},
	}
	return h
}

func TestPage(t *testing.T) {
	h := consoleHarness(t, "127.0.0.1:0", "s3cret")
	h.token = "" // read without it: the listener is loopback
	r := h.get("/", "", "")
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	body := string(r.body)
	for _, want := range []string{
		`<b id="generation">7</b>`, `<b id="queue-size">42</b>`, `<b id="connections">3</b>`,
		`<td id="rate-received">60.00</td>`, `<td id="rate-delivered">30.00</td>`, `<td id="total-received">0</td>`,
		`<tr data-site="gmail-smtp-in.l.google.com"><td class="key">gmail-smtp-in.l.google.com</td><td class="provider">google</td><td class="queued">40</td><td class="oldest">1h</td><td class="conns">3</td><td class="delivered">0.50</td>`,
		`<span>421 4.7.28: 40</span>`, `<li><b>40</b> 421 4.7.28 &lt;b&gt;slow down&lt;/b&gt;</li>`, // escaped
		`<td class="left">1h30m</td><td class="origin">google-block</td>`, `<li>main.cue:3:1: bad</li>`,
		`<script src="/ui/console.js" defer></script>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("page has inline script or loads from elsewhere")
	}
	for path, ct := range map[string]string{"/ui/console.js": "text/javascript; charset=utf-8", "/ui/console.css": "text/css; charset=utf-8"} {
		if r := h.get(path, "", ""); r.status != 200 || r.header.Get("Content-Type") != ct || len(r.body) < 100 {
			t.Errorf("%s: %d %q %d bytes", path, r.status, r.header.Get("Content-Type"), len(r.body))
		}
	}
	for _, path := range []string{"/ui/index.html", "/ui/nope.js"} {
		if r := h.get(path, "", ""); r.status != 404 {
			t.Errorf("%s: %d, want 404", path, r.status)
		}
	}
	r = h.get("/api/v1/console", "", "")
	if m := r.json(t); r.status != 200 || m["queue_size"] != 42.0 || len(m["throttles"].([]any)) != 0 {
		t.Errorf("console JSON: %d %s", r.status, r.body)
	}
}

// TestPageAccess: reading the console needs the token except on a
// loopback listener, and then only for a loopback Host; actions always
// need the token when one is configured.
func TestPageAccess(t *testing.T) {
	for _, c := range []struct {
		name, addr, token, host, presented string
		path                               string
		status                             int
	}{
		{"loopback, no token configured", "127.0.0.1:0", "", "", "", "/", 200},
		{"loopback, token configured, none sent", "127.0.0.1:0", "s3cret", "", "", "/", 200},
		{"loopback, JSON without token", "127.0.0.1:0", "s3cret", "", "", "/api/v1/console", 200},
		{"localhost Host", "127.0.0.1:0", "s3cret", "localhost:8025", "", "/", 200},
		{"rebound Host, no token", "127.0.0.1:0", "s3cret", "evil.example:8025", "", "/", 403},
		{"rebound Host, no token configured", "127.0.0.1:0", "", "evil.example:8025", "", "/api/v1/console", 403},
		{"rebound Host, asset", "127.0.0.1:0", "", "evil.example", "", "/ui/console.js", 403},
		{"rebound Host with the token", "127.0.0.1:0", "s3cret", "mta.example.com", "s3cret", "/", 200},
		{"public listener, no token", "0.0.0.0:0", "s3cret", "", "", "/", 401},
		{"public listener, JSON no token", "0.0.0.0:0", "s3cret", "", "", "/api/v1/console", 401},
		{"public listener, wrong token", "0.0.0.0:0", "s3cret", "", "nope", "/", 401},
		{"public listener, token", "0.0.0.0:0", "s3cret", "mta.example.com", "s3cret", "/", 200},
		{"loopback, other API without token", "127.0.0.1:0", "s3cret", "", "", "/api/v1/queue", 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := consoleHarness(t, c.addr, c.token)
			if r := h.get(c.path, c.host, c.presented); r.status != c.status {
				t.Errorf("GET %s: %d, want %d: %s", c.path, r.status, c.status, r.body)
			}
		})
	}
	// The page's actions are API calls: without the token they are refused.
	h := consoleHarness(t, "127.0.0.1:0", "s3cret")
	h.token = ""
	wantError(t, h.do("POST", "/api/v1/messages/bulk", map[string]any{"action": "retry", "all": true}), http.StatusUnauthorized, "bearer token")
	h.wantNoCalls()
}
