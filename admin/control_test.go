package admin

import (
	"errors"
	"net/http"
	"testing"
)

func TestReload(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/api/v1/reload", nil)
	if m := r.json(t); r.status != 200 || m["ok"] != true || m["generation"] != 2.0 {
		t.Errorf("%d %s", r.status, r.body)
	}
	h.fake.reload = &ReloadResult{Generation: 2, Errors: []string{"main.cue:3:5: listeners.mx.addr: bad port"}}
	m := wantError(t, h.do("POST", "/api/v1/reload", nil), http.StatusUnprocessableEntity, "configuration refused (1 errors)")
	d := m["detail"].(map[string]any)
	if errs := d["errors"].([]any); len(errs) != 1 || errs[0] != "main.cue:3:5: listeners.mx.addr: bad port" || d["ok"] != false {
		t.Errorf("detail %v", d)
	}
	h.fake.err = errors.New("cannot read main.cue")
	wantError(t, h.do("POST", "/api/v1/reload", nil), http.StatusInternalServerError, "cannot read main.cue")

	a := h.Actions()
	if len(a) != 3 || a[0].Err != nil || a[0].Generation != 2 || a[1].Err == nil || a[2].Err == nil {
		t.Errorf("actions %+v", a)
	}
}

func TestStatus(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/api/v1/status", nil)
	m := r.json(t)
	if r.status != 200 || m["generation"] != 3.0 || m["ready"] != true || m["queue_size"] != 12.0 {
		t.Errorf("%d %s", r.status, r.body)
	}
	l := m["listeners"].([]any)[0].(map[string]any)
	if l["name"] != "mx" || l["connections"] != 2.0 {
		t.Errorf("listener %v", l)
	}
	h.fake.err = errors.New("engine stopped")
	wantError(t, h.do("GET", "/api/v1/status", nil), http.StatusInternalServerError, "engine stopped")
}
