package feedback

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/reception"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type suppression struct{ Tenant, Addr, Reason, Source string }

type fakeSuppressor struct{ got []suppression }

func (f *fakeSuppressor) Suppress(tenant, addr, reason, source string) error {
	f.got = append(f.got, suppression{tenant, addr, reason, source})
	return nil
}

// testIndex knows the messages the testdata reports are about.
func testIndex() *Index {
	x := NewIndex(16)
	for _, m := range []Meta{
		{ID: "1j1j98svv1ok2h2g", MessageID: "<8787KJKJ3K4J3K4J3K4J3.mail@example.com>", From: "news@example.com", Tenant: "acme", Campaign: "spring"},
		{ID: "1j1jyahoo0000000", MessageID: "<digest-2026-47.reader77@example.com>", From: "news@example.com", Tenant: "acme", Campaign: "digest"},
		{ID: "1j1jjmrp00000000", MessageID: "<sale-0412.jane@example.com>", From: "news@example.com", Tenant: "shop"},
		{ID: "1j1jexim00000000", MessageID: "<digest-2026-47.old@example.com>", From: "news@example.com", Tenant: "acme", Campaign: "digest"},
	} {
		x.Stored(m.ID, m.MessageID)
		x.Accepted(m.ID, m.From, m.Tenant, m.Campaign)
	}
	return x
}

// TestHandlerGolden hands each testdata report to a Handler as a feedback
// listener would and writes what came of it (events, suppressions, the
// unmatched report kept) to testdata/NAME.handled.
func TestHandlerGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.eml")
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".eml")
		t.Run(name, func(t *testing.T) {
			raw, _ := os.ReadFile(f)
			var out bytes.Buffer
			enc := json.NewEncoder(&out)
			enc.SetEscapeHTML(false)
			sup := &fakeSuppressor{}
			dir := t.TempDir()
			reports := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "reports"}, []string{"kind", "matched"})
			h := NewHandler(Options{Listener: "fbl", VERPDomain: "fb.example.com", Index: testIndex(),
				Emit:       func(ev deliverylog.Event) { fmt.Fprint(&out, "event "); enc.Encode(ev) },
				Suppressor: sup, Unmatched: &Store{Dir: dir}, Reports: reports, Now: func() time.Time { return now }})
			id, err := h.Accept(context.Background(), &reception.Submission{From: "", Recipients: []string{"fbl@fb.example.com"},
				Body: crlf(raw), Listener: "fbl", ClientIP: "127.0.0.1"})
			if err != nil || !strings.HasPrefix(id, "fb") {
				t.Fatalf("Accept = %q, %v", id, err)
			}
			for _, s := range sup.got {
				fmt.Fprintf(&out, "suppress tenant=%q addr=%q reason=%q source=%q\n", s.Tenant, s.Addr, s.Reason, s.Source)
			}
			kept, _ := os.ReadDir(dir)
			for _, k := range kept {
				b, _ := os.ReadFile(filepath.Join(dir, k.Name()))
				fmt.Fprintf(&out, "kept unmatched: %d bytes, same as received: %v\n", len(b), bytes.Equal(b, crlf(raw)))
			}
			for _, kind := range []string{KindARF, KindDSN, KindBounce, KindUnknown} {
				for _, m := range []string{"true", "false"} {
					if n := testutil.ToFloat64(reports.WithLabelValues(kind, m)); n != 0 {
						fmt.Fprintf(&out, "cuemta_feedback_reports_total{kind=%q,matched=%q} %v\n", kind, m, n)
					}
				}
			}
			golden.Check(t, filepath.Join("testdata", name+".handled"), out.Bytes())
		})
	}
}

// TestStoreKeepsBounded: the unmatched store keeps the newest Keep files.
func TestStoreKeepsBounded(t *testing.T) {
	s := &Store{Dir: filepath.Join(t.TempDir(), "feedback", "unmatched")}
	s.SetKeep(3)
	t0 := time.Unix(1700000000, 0)
	for i := range 5 {
		if _, err := s.Put(t0.Add(time.Duration(i)*time.Second), fmt.Sprintf("r%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(s.Dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name()[21:])
		if fi, _ := e.Info(); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(s.Dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
	if want := []string{"r2.eml", "r3.eml", "r4.eml"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("kept %v, want %v", got, want)
	}
}

// TestUnmatchedNotKeptIs451: a report that cannot be kept is refused
// with 451, so the sender retries rather than the report being lost.
func TestUnmatchedNotKeptIs451(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	h := NewHandler(Options{Emit: func(deliverylog.Event) {}, Unmatched: &Store{Dir: filepath.Join(file, "unmatched")}})
	_, err := h.Accept(context.Background(), &reception.Submission{Body: []byte("Subject: hi\r\n\r\nhello\r\n")})
	r, ok := err.(*reception.Reply)
	if !ok || r.Code != 451 || r.Enhanced != "4.3.0" {
		t.Fatalf("Accept error = %v, want a 451 4.3.0 reply", err)
	}
}

// TestIndexEvicts: the index forgets the oldest message, and its
// Message-ID with it, once full.
func TestIndexEvicts(t *testing.T) {
	x := NewIndex(2)
	for _, id := range []string{"a", "b", "c"} {
		x.Stored(id, "<"+id+"@x>")
	}
	if _, ok := x.ByID("a"); ok {
		t.Error("a still indexed after two newer messages")
	}
	if _, ok := x.ByMessageID("<a@x>"); ok {
		t.Error("<a@x> still indexed")
	}
	if m, ok := x.ByMessageID("<c@x>"); !ok || m.ID != "c" {
		t.Errorf("ByMessageID(<c@x>) = %+v, %v", m, ok)
	}
}
