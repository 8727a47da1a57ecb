package e2e

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// TestTLSOutcomeLogged: each delivery records the TLS of its connection.
// A site offering STARTTLS is reached over TLS (opportunistic, so the
// certificate is not checked: verified "none"), one that does not in
// clear; both show in the delivery log and the metrics.
func TestTLSOutcomeLogged(t *testing.T) {
	s := startSim(t, map[string]*sim.Site{
		"secure": {Domains: []string{"secure.test"}, MX: []sim.MXHost{{Host: "mx.secure.test", IP: "127.0.0.6"}}, STARTTLS: true},
		"plain":  {Domains: []string{"plain.test"}, MX: []sim.MXHost{{Host: "mx.plain.test", IP: "127.0.0.7"}}},
	})
	logFile := filepath.Join(t.TempDir(), "delivery.log")
	srv := startServer(t, mtaConfig(t, s, `profiles: default: tls: "opportunistic"
log: file: "`+logFile+`"`), "mx")
	inject(t, srv.addrs["mx"], 1, 1, "alice@origin.test", func(int) []string {
		return []string{"a@secure.test", "b@plain.test"}
	})

	type rec struct {
		Type, Rcpt, TLSVersion, TLSCipher, TLSVerified string
	}
	got := map[string]rec{}
	waitFor(t, 20*time.Second, "both deliveries in the log", func() bool {
		sc := bufio.NewScanner(strings.NewReader(mustRead(t, logFile)))
		for sc.Scan() {
			var ev struct {
				Type        string `json:"type"`
				Rcpt        string `json:"rcpt"`
				TLSVersion  string `json:"tls_version"`
				TLSCipher   string `json:"tls_cipher"`
				TLSVerified string `json:"tls_verified"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("delivery log line %q: %v", sc.Text(), err)
			}
			if ev.Type == "delivery" {
				got[ev.Rcpt] = rec{ev.Type, ev.Rcpt, ev.TLSVersion, ev.TLSCipher, ev.TLSVerified}
			}
		}
		return len(got) == 2
	})
	if r := got["a@secure.test"]; !strings.HasPrefix(r.TLSVersion, "TLS 1.") || r.TLSCipher == "" || r.TLSVerified != "none" {
		t.Errorf("delivery over STARTTLS logged %+v, want a TLS version and cipher, verified none", r)
	}
	if r := got["b@plain.test"]; r.TLSVersion != "" || r.TLSCipher != "" || r.TLSVerified != "none" {
		t.Errorf("delivery in clear logged %+v, want no TLS version or cipher, verified none", r)
	}
	m := metricsText(t, srv)
	for _, want := range []string{
		`cuemta_recipients_delivered_tls_total{verified="none",version="` + got["a@secure.test"].TLSVersion + `"} 1`,
		`cuemta_recipients_delivered_tls_total{verified="none",version="none"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
