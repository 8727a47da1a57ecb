package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/cuemta/cuemta/internal/golden"
)

// exercise calls every recording method once or more.
func exercise(m *Metrics) {
	m.Received("mx")
	m.Received("mx")
	m.Received("http")
	m.Delivered("gmail.com-mx")
	m.Transient("gmail.com-mx", "throttled", "rate-limited")
	m.Bounced("outlook-mx", "blocked", "not-a-category")
	m.Expired("outlook-mx")
	m.RuleHit("message", "newsletters")
	m.RuleError("response", "bad-regex")
	m.reloadOutcome(true, time.Unix(1700000000, 0))
	m.reloadOutcome(false, time.Unix(1700000100, 500_000_000))
	m.SetGeneration(4)
	m.SetQueueSize(42)
	m.SpoolSpaceFunc(func() SpoolSpace { return SpoolSpace{Free: 123456789, Reserve: 78643200, Low: true} })
	m.ReceptionBudgetFunc(func() ReceptionBudget {
		return ReceptionBudget{InFlight: 47185920, Limit: 268435456, RefusedAtMail: 3, RefusedInData: 95}
	})
	m.ConnOpened("gmail.com-mx")
	m.ConnOpened("gmail.com-mx")
	m.ConnClosed("gmail.com-mx")
	m.ListenerConnOpened("submission")
	m.SetSuspensions("site", 2)
	m.SpoolFsync(180 * time.Microsecond)
	m.SpoolFsync(3 * time.Millisecond)
	m.SMTPReplyLatency(40 * time.Millisecond)
	m.ReceptionLimited("messages", "client_ip")
	m.ReceptionLimited("recipients", "tenant")
	m.AuthFailed()
	m.AuthRefused("client_ip")
	m.DeliveredTLS("TLS 1.3", "none")
	m.Verified("mx", "dmarc", "fail")
	m.DeliveredTLS("", "none")
	if r := m.FeedbackReports(); r != nil {
		r.WithLabelValues("arf", "true").Inc()
	}
	m.HookSent("crm", 25)
	m.HookFailed("crm")
	m.HookStatsFunc(func() []HookQueue { return []HookQueue{{Name: "crm", Queued: 7, Oldest: 1500 * time.Millisecond}} })
	m.TLSReportStatsFunc(func() TLSReportStats { return TLSReportStats{Pending: 2, ResultsDropped: 1} })
	m.DMARCReportStatsFunc(func() DMARCReportStats { return DMARCReportStats{Pending: 1, ReportsDropped: 3} })
	m.MilterOutcome("mx", "spamassassin", "accept")
	m.MilterOutcome("mx", "spamassassin", "reject")
	m.MilterError("mx", "clamav", "timeout")
	m.ClusterFunc(func() Cluster { return Cluster{Up: false, Nodes: 3, RoundTrips: 1234, Fallbacks: 17} })
	m.ReputationListed("ip1", "", "zen.example", true)
	m.ReputationListed("", "example.com", "dbl.example", false)
	m.GatewayStatsFunc(func() GatewayStats {
		return GatewayStats{Lookups: 40, CacheHits: 160, Listed: 12, Errors: 1, Greylisting: true, GreylistEntries: 30, Greylisted: 25, GreylistPassed: 20}
	})
}

func cuemtaNames(t *testing.T, m *Metrics) []string {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "cuemta_") {
			names = append(names, f.GetName())
		}
	}
	return names
}

func TestExpositionGolden(t *testing.T) {
	m := New()
	exercise(m)
	names := cuemtaNames(t, m)
	out, err := testutil.GatherAndFormat(m.Registry(), expfmt.TypeTextPlain, names...)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/exposition.golden", out)
}

func TestLint(t *testing.T) {
	m := New()
	exercise(m)
	problems, err := testutil.GatherAndLint(m.Registry(), cuemtaNames(t, m)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestRegistryHasRuntimeCollectors(t *testing.T) {
	fams, err := New().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var goSeen, procSeen bool
	for _, f := range fams {
		goSeen = goSeen || strings.HasPrefix(f.GetName(), "go_")
		procSeen = procSeen || strings.HasPrefix(f.GetName(), "process_")
	}
	if !goSeen {
		t.Error("no go_* metrics")
	}
	if !procSeen {
		t.Error("no process_* metrics")
	}
}

// TestReadmeListsEveryMetric keeps README.md's table in step with the code.
func TestReadmeListsEveryMetric(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, mm := range regexp.MustCompile("(?m)^\\| `(cuemta_[a-z_]+)`").FindAllStringSubmatch(string(readme), -1) {
		documented[mm[1]] = true
	}
	m := New()
	exercise(m)
	names := cuemtaNames(t, m)
	for _, n := range names {
		if !documented[n] {
			t.Errorf("%s is not in README.md", n)
		}
		delete(documented, n)
	}
	for n := range documented {
		t.Errorf("README.md documents %s, which does not exist", n)
	}
}

func TestSiteCap(t *testing.T) {
	m := New(MaxSites(2))
	for _, s := range []string{"a", "b", "c", "d", "a"} {
		m.Delivered(s)
		m.ConnOpened(s)
	}
	m.ConnClosed("c")
	m.ConnClosed("a")
	for site, want := range map[string]float64{"a": 2, "b": 1, OtherSite: 2} {
		if got := testutil.ToFloat64(m.delivered.WithLabelValues(site)); got != want {
			t.Errorf("delivered{site=%q} = %v, want %v", site, got, want)
		}
	}
	for site, want := range map[string]float64{"a": 1, "b": 1, OtherSite: 1} {
		if got := testutil.ToFloat64(m.outConns.WithLabelValues(site)); got != want {
			t.Errorf("connections{site=%q} = %v, want %v", site, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.delivered); n != 3 {
		t.Errorf("%d delivered series, want 3 (a, b, other)", n)
	}
}

func TestSiteCapConcurrent(t *testing.T) {
	l := newLimiter(10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				l.label(string(rune('a' + (g*100+i)%26)))
			}
		})
	}
	wg.Wait()
	if len(l.seen) != 10 {
		t.Errorf("%d sites admitted, want 10", len(l.seen))
	}
}

func TestQueueSizeFunc(t *testing.T) {
	m := New()
	m.SetQueueSize(3)
	if got := testutil.ToFloat64(m.queue); got != 3 {
		t.Errorf("queue = %v, want 3", got)
	}
	m.QueueSizeFunc(func() int { return 7 })
	m.SetQueueSize(5)
	if got := testutil.ToFloat64(m.queue); got != 7 {
		t.Errorf("queue with func = %v, want 7", got)
	}
	m.QueueSizeFunc(nil)
	if got := testutil.ToFloat64(m.queue); got != 5 {
		t.Errorf("queue after func removed = %v, want 5", got)
	}
}

func TestReloadOutcome(t *testing.T) {
	m := New()
	if got := testutil.ToFloat64(m.reloadOK); got != 1 {
		t.Errorf("successful before any reload = %v, want 1", got)
	}
	m.ReloadOutcome(false)
	if got := testutil.ToFloat64(m.reloadOK); got != 0 {
		t.Errorf("successful after a refused reload = %v, want 0", got)
	}
	if ts := testutil.ToFloat64(m.reloadTime); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Errorf("last reload timestamp %v is not now", ts)
	}
	m.ReloadOutcome(true)
	if got := testutil.ToFloat64(m.reloads.WithLabelValues("ok")); got != 1 {
		t.Errorf("reloads{ok} = %v", got)
	}
}

func TestNilMetricsIsNoOp(t *testing.T) {
	var m *Metrics
	exercise(m)
	m.ReloadOutcome(true)
	m.QueueSizeFunc(func() int { return 1 })
	if m.Registry() != nil {
		t.Error("nil Metrics has a registry")
	}
}

func TestNamesSorted(t *testing.T) {
	// Gather returns families sorted by name; the golden file relies on it.
	m := New()
	exercise(m)
	if names := cuemtaNames(t, m); !slices.IsSorted(names) {
		t.Errorf("names not sorted: %v", names)
	}
}
