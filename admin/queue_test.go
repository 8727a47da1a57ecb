package admin

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestQueue(t *testing.T) {
	h := newHarness(t)
	h.fake.queue = []QueueGroup{{Key: "gmail", Count: 3, Oldest: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	r := h.do("GET", "/api/v1/queue", nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["by"] != "site" {
		t.Errorf("default grouping %v, want site", m["by"])
	}
	groups := m["groups"].([]any)
	g := groups[0].(map[string]any)
	if g["key"] != "gmail" || g["count"] != 3.0 || g["oldest"] != "2026-01-01T00:00:00Z" {
		t.Errorf("group %v", g)
	}
	if _, ok := g["suspended_until"]; ok {
		t.Errorf("zero suspended_until is written: %v", g)
	}
	h.fake.queue = nil
	r = h.do("GET", "/api/v1/queue?by=tenant", nil)
	if m := r.json(t); r.status != 200 || len(m["groups"].([]any)) != 0 {
		t.Errorf("empty queue: %d %s (want groups: [])", r.status, r.body)
	}
	if want := []string{"Queue site", "Queue tenant"}; !slices.Equal(h.fake.Calls(), want) {
		t.Errorf("calls %v, want %v", h.fake.Calls(), want)
	}
}

func TestQueueBadGrouping(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("GET", "/api/v1/queue?by=domain", nil), http.StatusBadRequest, "site, pool, tenant")
	h.wantNoCalls()
}

func TestQueueBackendError(t *testing.T) {
	h := newHarness(t)
	h.fake.err = errors.New("spool unreadable")
	wantError(t, h.do("GET", "/api/v1/queue", nil), http.StatusInternalServerError, "spool unreadable")
}

func TestMessage(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/api/v1/messages/m1", nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["id"] != "m1" || m["size"] != 123.0 || m["received"] != "2026-01-02T03:04:05Z" {
		t.Errorf("message %v", m)
	}
	rc := m["recipients"].([]any)[0].(map[string]any)
	if rc["status"] != "deferred" || rc["last_reply"] != "451 4.7.1 try later" {
		t.Errorf("recipient %v", rc)
	}
	if _, ok := m["next_attempt"]; ok {
		t.Error("zero next_attempt is written")
	}
	wantError(t, h.do("GET", "/api/v1/messages/nope", nil), http.StatusNotFound, "not found")
}

func TestMessageActions(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		method, path, body, call, action string
	}{
		{"POST", "/api/v1/messages/m1/retry", "", "Retry m1", ActionRetry},
		{"POST", "/api/v1/messages/m1/bounce", `{"reason": "spam complaint"}`, "Bounce m1 spam complaint", ActionBounce},
		{"POST", "/api/v1/messages/m1/bounce", "", "Bounce m1 " + defaultBounceReason, ActionBounce},
		{"DELETE", "/api/v1/messages/m1", "", "Delete m1", ActionDelete},
	} {
		before := len(h.fake.Calls())
		var body any
		if c.body != "" {
			body = c.body
		}
		r := h.do(c.method, c.path, body)
		if r.status != 200 {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.status, r.body)
			continue
		}
		if m := r.json(t); m["action"] != c.action || m["id"] != "m1" {
			t.Errorf("%s %s: body %s", c.method, c.path, r.body)
		}
		if calls := h.fake.Calls()[before:]; !slices.Equal(calls, []string{c.call}) {
			t.Errorf("%s %s: calls %v, want %q", c.method, c.path, calls, c.call)
		}
		a := h.Actions()
		last := a[len(a)-1]
		if last.Action != c.action || last.MessageID != "m1" || last.Err != nil || last.Actor != "cli:tester" || last.ClientIP != "127.0.0.1" || !last.Time.Equal(testNow) {
			t.Errorf("%s %s: action %+v", c.method, c.path, last)
		}
	}
}

func TestMessageActionsUnknownID(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/messages/zz/retry"},
		{"POST", "/api/v1/messages/zz/bounce"},
		{"DELETE", "/api/v1/messages/zz"},
	} {
		wantError(t, h.do(c.method, c.path, nil), http.StatusNotFound, "zz")
	}
	// The attempts are recorded, with their error.
	for _, a := range h.Actions() {
		if !errors.Is(a.Err, ErrNotFound) {
			t.Errorf("action %+v: Err = %v, want ErrNotFound", a, a.Err)
		}
	}
}

func TestBounceBadInput(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{`{"reason": `, "malformed JSON"},
		{`{"reasn": "typo"}`, "unknown field"},
		{`{"reason": 5}`, "reason"},
		{`{"reason": "two\nlines"}`, "single line"},
		{`{"reason": "a"} {"reason": "b"}`, "after the JSON object"},
		{`[1]`, "malformed JSON"},
	} {
		h := newHarness(t)
		wantError(t, h.do("POST", "/api/v1/messages/m1/bounce", c.body), http.StatusBadRequest, c.want)
		h.wantNoCalls()
	}
}

func TestBadMessageID(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("POST", "/api/v1/messages/a%01b/retry", nil), http.StatusBadRequest, "control character")
	h.wantNoCalls()
}

func TestBodyTooLarge(t *testing.T) {
	h := newHarness(t, WithLimits(1<<20, 100))
	big := `{"reason": "` + string(make([]byte, 200)) + `"}`
	wantError(t, h.do("POST", "/api/v1/messages/m1/bounce", big), http.StatusRequestEntityTooLarge, "larger than 100 bytes")
	h.wantNoCalls()
}
