package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/smtpreply"
)

// bulkHarness is a harness whose backend knows n queued messages m000...,
// the even ones at site gmail (provider google), the odd ones at yahoo.
func bulkHarness(t *testing.T, n int) *harness {
	h := newHarness(t)
	h.fake.known = map[string]*MessageInfo{}
	for i := range n {
		site, prov := "gmail", "google"
		if i%2 == 1 {
			site, prov = "yahoo", ""
		}
		id := fmt.Sprintf("m%04d", i)
		h.fake.known[id] = &MessageInfo{ID: id, From: "news@example.com", Received: testNow.Add(-time.Duration(i) * time.Minute),
			Recipients: []RecipientInfo{{Address: fmt.Sprintf("u%d@%s.com", i, site), Status: "pending", Site: site, Provider: prov}}}
	}
	old := bulkPause
	bulkPause = time.Millisecond
	t.Cleanup(func() { bulkPause = old })
	return h
}

func TestMessagesPaging(t *testing.T) {
	h := bulkHarness(t, 5)
	var seen []string
	after := ""
	for page := 0; ; page++ {
		r := h.do("GET", "/api/v1/messages?site=gmail&limit=2&after="+after, nil)
		if r.status != 200 {
			t.Fatalf("%d %s", r.status, r.body)
		}
		m := r.json(t)
		if m["total"] != 3.0 {
			t.Errorf("total %v, want 3", m["total"])
		}
		for _, x := range m["messages"].([]any) {
			seen = append(seen, x.(map[string]any)["id"].(string))
		}
		next, _ := m["next"].(string)
		if next == "" {
			break
		}
		after = next
		if page > 3 {
			t.Fatal("paging does not end")
		}
	}
	if want := []string{"m0000", "m0002", "m0004"}; !slices.Equal(seen, want) {
		t.Errorf("pages gave %v, want %v", seen, want)
	}
}

func TestMessagesRefused(t *testing.T) {
	for _, q := range []string{"domain=x", "older_than=-1h", "class=9xx", "category=nope", "limit=0", "limit=1001", "limit=x",
		"site=a&site=b", "after=%01"} {
		t.Run(q, func(t *testing.T) {
			h := bulkHarness(t, 3)
			wantError(t, h.do("GET", "/api/v1/messages?"+q, nil), http.StatusBadRequest, "")
			h.wantNoCalls()
		})
	}
}

func TestBulkDryRun(t *testing.T) {
	h := bulkHarness(t, 6)
	r := h.do("POST", "/api/v1/messages/bulk", map[string]any{"action": "bounce", "filter": map[string]string{"provider": "google"}, "dry_run": true})
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	m := r.json(t)
	if m["matched"] != 3.0 || m["done"] != 0.0 || m["dry_run"] != true || m["limit"] != float64(BulkMax) {
		t.Errorf("dry run: %s", r.body)
	}
	if calls := h.fake.Calls(); !slices.Equal(calls, []string{"Messages provider=google"}) {
		t.Errorf("dry run called %v", calls)
	}
	if a := h.Actions(); len(a) != 0 {
		t.Errorf("dry run recorded %+v", a)
	}
}

func TestBulkActions(t *testing.T) {
	for _, c := range []struct {
		action string
		extra  map[string]any
		call   string // of m0000, the first message
		reason string
	}{
		{"retry", nil, "Retry m0000", ""},
		{"bounce", map[string]any{"reason": "list closed"}, "Bounce m0000 list closed", "list closed"},
		{"bounce", nil, "Bounce m0000 bounced by the administrator", "bounced by the administrator"},
		{"delete", nil, "Delete m0000", ""},
		{"suspend", map[string]any{"duration": "2h"}, "Hold m0000 " + testNow.Add(2*time.Hour).UTC().Format(time.RFC3339), ""},
	} {
		t.Run(c.action+" "+c.reason, func(t *testing.T) {
			// More than one batch: 1201 messages, 601 at gmail.
			h := bulkHarness(t, 1201)
			body := map[string]any{"action": c.action, "filter": map[string]string{"site": "gmail"}}
			for k, v := range c.extra {
				body[k] = v
			}
			r := h.do("POST", "/api/v1/messages/bulk", body)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.body)
			}
			m := r.json(t)
			if m["matched"] != 601.0 || m["done"] != 601.0 || m["failed"] != 0.0 || m["gone"] != 0.0 {
				t.Errorf("result %s", r.body)
			}
			calls := h.fake.Calls()
			if len(calls) != 602 || calls[0] != "Messages site=gmail" || !slices.Contains(calls, c.call) {
				t.Errorf("%d calls, first %v; want Messages then 601 actions including %q", len(calls), calls[:min(3, len(calls))], c.call)
			}
			acts := h.Actions()
			if len(acts) != 602 {
				t.Fatalf("%d actions recorded, want 601 messages and the bulk action", len(acts))
			}
			for _, a := range acts[:601] {
				if a.Action != c.action || a.MessageID == "" || a.Actor != "cli:tester" {
					t.Errorf("per-message action %+v", a)
					break
				}
			}
			bulk := acts[601]
			ev := bulk.LogEvent()
			if bulk.Action != "bulk-"+c.action || ev.Type != "admin" || ev.Action != "bulk-"+c.action ||
				!strings.Contains(ev.Reason, "filter site=gmail; 601 matched, 601 done, 0 gone, 0 failed") ||
				!strings.HasPrefix(ev.Reason, c.reason) {
				t.Errorf("bulk event %+v", ev)
			}
		})
	}
}

func TestBulkGoneAndFailed(t *testing.T) {
	h := bulkHarness(t, 4)
	h.fake.actErr = map[string]error{
		"m0001": ErrNotFound, // delivered between the listing and the action
		"m0002": Refusal(smtpreply.New(451, "4.3.0", "message is being delivered right now")),
	}
	r := h.do("POST", "/api/v1/messages/bulk", map[string]any{"action": "delete", "all": true})
	m := r.json(t)
	if r.status != 200 || m["matched"] != 4.0 || m["done"] != 2.0 || m["gone"] != 1.0 || m["failed"] != 1.0 {
		t.Errorf("%d %s", r.status, r.body)
	}
	if errs, _ := m["errors"].([]any); len(errs) != 1 || !strings.Contains(errs[0].(string), "m0002: 451 4.3.0") {
		t.Errorf("errors %v", m["errors"])
	}
	acts := h.Actions()
	var ids []string
	for _, a := range acts[:len(acts)-1] {
		ids = append(ids, a.MessageID)
	}
	slices.Sort(ids)
	// The gone message is not recorded: nothing happened to it.
	if want := []string{"m0000", "m0002", "m0003"}; !slices.Equal(ids, want) {
		t.Errorf("recorded %v, want %v", ids, want)
	}
	if ev := acts[len(acts)-1].LogEvent(); !strings.Contains(ev.Reason, "4 matched, 2 done, 1 gone, 1 failed") || !strings.Contains(ev.Reason, "failed: 1 of 4 failed") {
		t.Errorf("bulk event reason %q", ev.Reason)
	}
}

func TestBulkRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		body   any
		status int
		substr string
	}{
		{"no action", map[string]any{"filter": map[string]string{"site": "gmail"}}, 400, "bad action"},
		{"unknown action", map[string]any{"action": "expire", "filter": map[string]string{"site": "gmail"}}, 400, "retry, bounce, delete, suspend"},
		{"no filter", map[string]any{"action": "delete"}, 400, `"all": true`},
		{"empty filter", map[string]any{"action": "delete", "filter": map[string]string{}}, 400, `"all": true`},
		{"bad filter", map[string]any{"action": "retry", "filter": map[string]string{"older_than": "yesterday"}}, 400, "bad older_than"},
		{"unknown filter", map[string]any{"action": "retry", "filter": map[string]string{"mx": "x"}}, 400, "unknown filter"},
		{"unknown field", map[string]any{"action": "retry", "all": true, "force": true}, 400, "force"},
		{"suspend without duration", map[string]any{"action": "suspend", "all": true}, 400, "bad duration"},
		{"suspend too long", map[string]any{"action": "suspend", "all": true, "duration": "800h"}, 400, "bad duration"},
		{"duration on retry", map[string]any{"action": "retry", "all": true, "duration": "1h"}, 400, "only for suspend"},
		{"reason on delete", map[string]any{"action": "delete", "all": true, "reason": "x"}, 400, "only for bounce"},
		{"two-line reason", map[string]any{"action": "bounce", "all": true, "reason": "a\nb"}, 400, "single line"},
		{"not JSON", "action=retry", 400, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := bulkHarness(t, 3)
			wantError(t, h.do("POST", "/api/v1/messages/bulk", c.body), c.status, c.substr)
			h.wantNoCalls()
		})
	}
}

func TestBulkOneAtATime(t *testing.T) {
	h := bulkHarness(t, 3)
	h.srv.bulkMu.Lock()
	wantError(t, h.do("POST", "/api/v1/messages/bulk", map[string]any{"action": "retry", "all": true}), http.StatusConflict, "another bulk action")
	h.srv.bulkMu.Unlock()
	h.wantNoCalls()
}

func TestBulkBackendError(t *testing.T) {
	h := bulkHarness(t, 3)
	h.fake.err = fmt.Errorf("spool unreadable")
	wantError(t, h.do("POST", "/api/v1/messages/bulk", map[string]any{"action": "retry", "all": true}), http.StatusInternalServerError, "spool unreadable")
	if a := h.Actions(); len(a) != 0 {
		t.Errorf("a failed listing recorded %+v", a)
	}
}
