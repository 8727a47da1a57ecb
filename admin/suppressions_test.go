package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/suppress"
)

func newSuppressionHarness(t *testing.T) (*harness, *suppress.Store) {
	t.Helper()
	list, err := suppress.Open(t.TempDir(), suppress.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { list.Close() })
	return newHarness(t, WithSuppressions(list)), list
}

func TestSuppressionsAddListRemove(t *testing.T) {
	h, list := newSuppressionHarness(t)
	r := h.do("POST", "/api/v1/suppressions", SuppressRequest{Entries: []SuppressionEntry{
		{Address: "Gone@Example.com", Reason: "asked to stop"},
		{Tenant: "acme", Address: "acme-only@example.com", Source: "import", Expires: testNow.Add(48 * time.Hour)},
	}})
	if r.status != http.StatusOK || strings.TrimSpace(string(r.body)) != "{\n  \"added\": 2\n}" {
		t.Fatalf("POST: %d %s", r.status, r.body)
	}
	if !list.Suppressed("", "gone@example.com") || !list.Suppressed("acme", "acme-only@example.com") {
		t.Fatal("entries not in the list")
	}
	for _, tc := range []struct{ query, want string }{
		{"", `"count": 2`},
		{"?tenant=acme", `"address": "acme-only@example.com"`},
		{"?tenant=", `"address": "gone@example.com"`},
		{"?address=GONE@example.com", `"reason": "asked to stop"`},
		{"?limit=1", `"truncated": true`},
	} {
		r := h.do("GET", "/api/v1/suppressions"+tc.query, nil)
		if r.status != 200 || !strings.Contains(string(r.body), tc.want) {
			t.Errorf("GET %s: %d %s; want %s", tc.query, r.status, r.body, tc.want)
		}
	}
	if r := h.do("GET", "/api/v1/suppressions?tenant=acme", nil); strings.Contains(string(r.body), "gone@") {
		t.Errorf("tenant filter listed the global entry: %s", r.body)
	}
	r = h.do("GET", "/api/v1/suppressions?format=csv", nil)
	wantCSV := "tenant,address,source,reason,added,expires\n" +
		",gone@example.com,operator,asked to stop,2026-03-14T14:09:26Z,\n" +
		"acme,acme-only@example.com,import,,2026-03-14T14:09:26Z,2026-03-16T14:09:26Z\n"
	if r.status != 200 || string(r.body) != wantCSV || r.header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Errorf("CSV export: %d %q\n%s", r.status, r.header.Get("Content-Type"), r.body)
	}
	r = h.do("GET", "/api/v1/suppressions?format=jsonl", nil)
	if lines := strings.Split(strings.TrimSpace(string(r.body)), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], `{"tenant":"","address":"gone@example.com"`) {
		t.Errorf("JSON lines export: %s", r.body)
	}

	if r := h.do("DELETE", "/api/v1/suppressions/gone@example.com", nil); r.status != 200 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
	if list.Suppressed("", "gone@example.com") {
		t.Fatal("still suppressed after DELETE")
	}
	wantError(t, h.do("DELETE", "/api/v1/suppressions/gone@example.com", nil), 404, "not on it")
	// acme's entry is not the global one.
	wantError(t, h.do("DELETE", "/api/v1/suppressions/acme-only@example.com", nil), 404, "not on it")
	if r := h.do("DELETE", "/api/v1/suppressions/acme-only@example.com?tenant=acme", nil); r.status != 200 {
		t.Fatalf("DELETE of acme's entry: %d %s", r.status, r.body)
	}

	var got []string
	for _, a := range h.Actions() {
		got = append(got, a.Action+" "+a.Address+" "+a.Actor+" "+a.LogEvent().Reason)
	}
	want := []string{"suppress  cli:tester 2 entries", "unsuppress gone@example.com cli:tester ",
		"unsuppress gone@example.com cli:tester failed: not found", "unsuppress acme-only@example.com cli:tester failed: not found",
		"unsuppress acme-only@example.com cli:tester "}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("actions:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSuppressionsRefusals(t *testing.T) {
	h, list := newSuppressionHarness(t)
	for _, tc := range []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"bad address among good", SuppressRequest{Entries: []SuppressionEntry{{Address: "ok@example.com"}, {Address: "no-at-sign"}}}, 400, "entry 2: address"},
		{"bad source", SuppressRequest{Entries: []SuppressionEntry{{Address: "a@example.com", Source: "whim"}}}, 400, `source "whim"`},
		{"no entries", SuppressRequest{}, 400, "want 1 to 10000 entries"},
		{"unknown field", `{"entries":[{"address":"a@example.com","color":"red"}]}`, 400, "color"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, h.do("POST", "/api/v1/suppressions", tc.body), tc.status, tc.want)
		})
	}
	if list.Len() != 0 {
		t.Fatalf("refused requests added %d entries", list.Len())
	}
	wantError(t, h.do("GET", "/api/v1/suppressions?format=xml", nil), 400, "format")
	wantError(t, h.do("GET", "/api/v1/suppressions?limit=0", nil), 400, "limit")

	// A web form cannot add entries (csrf.go): without a token, only JSON.
	req, _ := http.NewRequest("POST", h.http.URL+"/api/v1/suppressions", strings.NewReader("entries=a@example.com"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := h.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType || list.Len() != 0 {
		t.Fatalf("form POST: %d, %d entries", resp.StatusCode, list.Len())
	}
	if a := h.Actions(); len(a) != 0 {
		t.Errorf("refused requests were recorded as actions: %+v", a)
	}
}

func TestSuppressionsWithoutList(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("GET", "/api/v1/suppressions", nil), 404, "no suppression list")
}
