package admin

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"
)

func TestSuspensionsList(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/api/v1/suspensions", nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	s := r.json(t)["suspensions"].([]any)[0].(map[string]any)
	if s["scope"] != "site" || s["key"] != "outlook" || s["until"] != "2026-01-02T04:00:00Z" || s["origin"] != "ms-block" {
		t.Errorf("suspension %v", s)
	}
	h.fake.suspensions = nil
	if r := h.do("GET", "/api/v1/suspensions", nil); string(r.body) != "{\n  \"suspensions\": []\n}\n" {
		t.Errorf("empty list: %s", r.body)
	}
}

func TestSuspend(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/api/v1/suspensions", map[string]string{"scope": "tenant", "key": "acme", "duration": "90m", "reason": "abuse report"})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	want := Suspension{Scope: "tenant", Key: "acme", Until: testNow.Add(90 * time.Minute).UTC(), Reason: "abuse report", Origin: "admin"}
	if len(h.fake.suspended) != 1 || h.fake.suspended[0] != want {
		t.Errorf("backend got %+v, want %+v", h.fake.suspended, want)
	}
	if m := r.json(t); m["until"] != "2026-03-14T15:39:26Z" {
		t.Errorf("reply %s", r.body)
	}
	a := h.Actions()
	if len(a) != 1 || a[0].Action != ActionSuspend || a[0].Scope != "tenant" || a[0].Key != "acme" || !a[0].Until.Equal(want.Until) {
		t.Errorf("actions %+v", a)
	}
}

func TestSuspendBadInput(t *testing.T) {
	for _, c := range []struct {
		body any
		want string
	}{
		{`{"scope": "site"`, "malformed JSON"},
		{``, "empty"},
		{map[string]string{"scope": "domain", "key": "x", "duration": "1h"}, `scope "domain" is not one of site, source, provider, tenant, campaign`},
		{map[string]string{"scope": "site", "duration": "1h"}, "key is empty"},
		{map[string]string{"scope": "site", "key": "x"}, "duration is missing"},
		{map[string]string{"scope": "site", "key": "x", "duration": "1 hour"}, "not a Go duration"},
		{map[string]string{"scope": "site", "key": "x", "duration": "-5m"}, "must be positive"},
		{map[string]string{"scope": "site", "key": "x", "duration": "9999h"}, "at most"},
		{map[string]string{"scope": "site", "key": "x", "duration": "1h", "until": "tomorrow"}, "unknown field"},
		{map[string]any{"scope": "site", "key": 5, "duration": "1h"}, "key"},
	} {
		h := newHarness(t)
		wantError(t, h.do("POST", "/api/v1/suspensions", c.body), http.StatusBadRequest, c.want)
		h.wantNoCalls()
	}
}

func TestSuspendAllProblemsAtOnce(t *testing.T) {
	h := newHarness(t)
	m := wantError(t, h.do("POST", "/api/v1/suspensions", map[string]string{"scope": "x", "duration": "y"}), http.StatusBadRequest, "scope")
	if d, _ := m["detail"].([]any); len(d) != 3 {
		t.Errorf("detail %v, want 3 problems (scope, key, duration)", m["detail"])
	}
}

func TestResume(t *testing.T) {
	h := newHarness(t)
	h.fake.suspensions = append(h.fake.suspensions, Suspension{Scope: "campaign", Key: "spring/2026"})
	if r := h.do("DELETE", "/api/v1/suspensions/site/outlook", nil); r.status != 200 {
		t.Errorf("%d %s", r.status, r.body)
	}
	if r := h.do("DELETE", "/api/v1/suspensions/campaign/spring/2026", nil); r.status != 200 {
		t.Errorf("key with a slash: %d %s", r.status, r.body)
	}
	if r := h.do("DELETE", "/api/v1/suspensions/campaign/spring%2F2026", nil); r.status != 200 {
		t.Errorf("key with an escaped slash: %d %s", r.status, r.body)
	}
	wantError(t, h.do("DELETE", "/api/v1/suspensions/site/gmail", nil), http.StatusNotFound, "not found")
	want := []string{"Resume site outlook", "Resume campaign spring/2026", "Resume campaign spring/2026", "Resume site gmail"}
	if !slices.Equal(h.fake.Calls(), want) {
		t.Errorf("calls %v, want %v", h.fake.Calls(), want)
	}
	a := h.Actions()
	if len(a) != 4 || a[0].Action != ActionResume || a[0].Err != nil || !errors.Is(a[3].Err, ErrNotFound) {
		t.Errorf("actions %+v", a)
	}
}

func TestResumeBadScope(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("DELETE", "/api/v1/suspensions/planet/mars", nil), http.StatusBadRequest, "scope")
	wantError(t, h.do("DELETE", "/api/v1/suspensions/site/", nil), http.StatusBadRequest, "key is empty")
	wantError(t, h.do("DELETE", "/api/v1/suspensions", nil), http.StatusMethodNotAllowed, "not allowed")
	h.wantNoCalls()
}

func TestSuspendBackendRefusal(t *testing.T) {
	h := newHarness(t)
	h.fake.err = BadRequest(`no source named "ip9"`)
	wantError(t, h.do("POST", "/api/v1/suspensions", map[string]string{"scope": "source", "key": "ip9", "duration": "1h"}), http.StatusBadRequest, "ip9")
}
