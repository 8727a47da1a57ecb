package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/sim"
)

// stsEvent is a delivery log line, as far as MTA-STS tests read it.
type stsEvent struct {
	Type        string `json:"type"`
	Rcpt        string `json:"rcpt"`
	MX          string `json:"mx"`
	Reply       string `json:"reply"`
	TLSVersion  string `json:"tls_version"`
	TLSVerified string `json:"tls_verified"`
	TLSPolicy   string `json:"tls_policy"`
	TLSFailure  string `json:"tls_failure"`
}

// stsEvents reads the delivery log's delivery and transient lines by
// recipient (the last of each).
func stsEvents(t *testing.T, logFile string) map[string]stsEvent {
	t.Helper()
	out := map[string]stsEvent{}
	data, err := os.ReadFile(logFile)
	if err != nil {
		return out
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		var ev stsEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("delivery log line %q: %v", sc.Text(), err)
		}
		if ev.Type == "delivery" || ev.Type == "transient" {
			out[ev.Rcpt] = ev
		}
	}
	return out
}

// stsPolicy is a policy body for one mx pattern.
func stsPolicy(mode, mx string, maxAge int) string {
	return fmt.Sprintf("version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: %d\r\n", mode, mx, maxAge)
}

// stsSetup starts the sim with sites, publishing each domain's
// _mta-sts TXT record, and a cuemta that trusts the sim's certificate
// (delivery.tlsRoots) and fetches policies from its port.
func stsSetup(t *testing.T, sites map[string]*sim.Site, extra string) (*sim.Sim, *server, string) {
	t.Helper()
	s := startSim(t, sites, func(c *sim.Config) {
		for _, site := range sites {
			if site.MTASTS != nil {
				for _, d := range site.Domains {
					c.DNS.Records = append(c.DNS.Records, fmt.Sprintf(`_mta-sts.%s. 60 IN TXT "v=STSv1; id=1"`, d))
				}
			}
		}
	})
	dir := t.TempDir()
	roots := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(roots, s.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "delivery.log")
	if p := s.MTASTSPort(); p != 0 {
		extra += fmt.Sprintf("\ndelivery: mtaSTS: port: %d", p)
	}
	srv := startServer(t, mtaConfig(t, s, fmt.Sprintf(`delivery: tlsRoots: %q
log: file: %q
%s`, roots, logFile, extra)), "mx")
	return s, srv, logFile
}

// TestMTASTSEnforce: a domain in enforce mode gets its mail only over
// TLS to an MX host its policy names, whose certificate is valid for it
// under delivery.tlsRoots; that delivery is logged tls_verified
// "mta-sts". An MX host outside the policy, a certificate that does not
// name the host, and a host without STARTTLS each defer the message
// with 451 4.7.5 saying why, and the site receives nothing: the
// profile's opportunistic TLS (which would send in clear) is overridden.
func TestMTASTSEnforce(t *testing.T) {
	sites := map[string]*sim.Site{
		"good": {Domains: []string{"good.test"}, MX: []sim.MXHost{{Host: "mx.good.test", IP: "127.0.40.1"}}, STARTTLS: true,
			MTASTS: &sim.SiteMTASTS{Policy: stsPolicy("enforce", "*.good.test", 86400)}},
		"elsewhere": {Domains: []string{"elsewhere.test"}, MX: []sim.MXHost{{Host: "mx.elsewhere.test", IP: "127.0.40.2"}}, STARTTLS: true,
			MTASTS: &sim.SiteMTASTS{Policy: stsPolicy("enforce", "mx.legit.test", 86400)}},
		"badcert": {Domains: []string{"badcert.test"}, MX: []sim.MXHost{{Host: "mx.badcert.test", IP: "127.0.40.3", BadCert: true}}, STARTTLS: true,
			MTASTS: &sim.SiteMTASTS{Policy: stsPolicy("enforce", "mx.badcert.test", 86400)}},
		"plain": {Domains: []string{"plain.test"}, MX: []sim.MXHost{{Host: "mx.plain.test", IP: "127.0.40.4"}},
			MTASTS: &sim.SiteMTASTS{Policy: stsPolicy("enforce", "mx.plain.test", 86400)}},
	}
	s, srv, logFile := stsSetup(t, sites, `profiles: default: tls: "opportunistic"`)
	rcpts := []string{"a@good.test", "b@elsewhere.test", "c@badcert.test", "d@plain.test"}
	inject(t, srv.addrs["mx"], 1, len(rcpts), "alice@origin.test", func(i int) []string { return []string{rcpts[i]} })

	var got map[string]stsEvent
	waitFor(t, 20*time.Second, "an outcome for every recipient", func() bool {
		got = stsEvents(t, logFile)
		return len(got) == len(rcpts)
	})
	if ev := got["a@good.test"]; ev.Type != "delivery" || ev.TLSVerified != "mta-sts" || ev.TLSPolicy != "mta-sts/enforce" || ev.TLSFailure != "" {
		t.Errorf("good.test: %+v; want delivered, tls_verified mta-sts", ev)
	}
	if m := messagesTo(s, "good"); len(m) != 1 || !m[0].TLS {
		t.Errorf("good.test received %v; want one message over TLS", m)
	}
	for rcpt, why := range map[string]string{
		"b@elsewhere.test": "matches none of the policy's mx patterns",
		"c@badcert.test":   "certificate is valid for",
		"d@plain.test":     "STARTTLS required but not offered",
	} {
		ev := got[rcpt]
		if ev.Type != "transient" || !strings.HasPrefix(ev.Reply, "451 4.7.5 MTA-STS policy of ") || !strings.Contains(ev.Reply, why) {
			t.Errorf("%s: %+v; want deferred 451 4.7.5 because %q", rcpt, ev, why)
		}
		t.Logf("%s: %s", rcpt, ev.Reply)
	}
	for _, site := range []string{"elsewhere", "badcert", "plain"} {
		if m := messagesTo(s, site); len(m) != 0 {
			t.Errorf("site %s received %d messages despite the enforce policy", site, len(m))
		}
	}
	t.Logf("delivery log:\n%s", mustRead(t, logFile))
}

// TestMTASTSTesting: in testing mode a session that fails the policy
// (a certificate that does not name the MX host) still delivers, as the
// profile says, and the delivery log says what would have failed.
func TestMTASTSTesting(t *testing.T) {
	sites := map[string]*sim.Site{
		"trial": {Domains: []string{"trial.test"}, MX: []sim.MXHost{{Host: "mx.trial.test", IP: "127.0.40.11", BadCert: true}}, STARTTLS: true,
			MTASTS: &sim.SiteMTASTS{Policy: stsPolicy("testing", "mx.trial.test", 86400)}},
		"fine": {Domains: []string{"fine.test"}, MX: []sim.MXHost{{Host: "mx.fine.test", IP: "127.0.40.12"}}, STARTTLS: true,
			MTASTS: &sim.SiteMTASTS{Policy: stsPolicy("testing", "mx.fine.test", 86400)}},
	}
	s, srv, logFile := stsSetup(t, sites, `profiles: default: tls: "opportunistic"`)
	rcpts := []string{"a@trial.test", "b@fine.test"}
	inject(t, srv.addrs["mx"], 1, len(rcpts), "alice@origin.test", func(i int) []string { return []string{rcpts[i]} })
	var got map[string]stsEvent
	waitFor(t, 20*time.Second, "both deliveries", func() bool {
		got = stsEvents(t, logFile)
		return got["a@trial.test"].Type == "delivery" && got["b@fine.test"].Type == "delivery"
	})
	if ev := got["a@trial.test"]; ev.TLSPolicy != "mta-sts/testing" || ev.TLSVerified != "none" || !strings.Contains(ev.TLSFailure, "certificate is valid for") {
		t.Errorf("trial.test: %+v; want delivered unverified with the certificate failure logged", ev)
	}
	if ev := got["b@fine.test"]; ev.TLSPolicy != "mta-sts/testing" || ev.TLSVerified != "mta-sts" || ev.TLSFailure != "" {
		t.Errorf("fine.test: %+v; want delivered, tls_verified mta-sts", ev)
	}
	if n := len(messagesTo(s, "trial")); n != 1 {
		t.Errorf("trial.test received %d messages, want 1", n)
	}
	t.Logf("delivery log:\n%s", mustRead(t, logFile))
}

// TestMTASTSPolicyCached: the policy is fetched once for several
// messages, and again once its max_age has passed.
func TestMTASTSPolicyCached(t *testing.T) {
	const maxAge = 4 * time.Second
	sites := map[string]*sim.Site{
		"cached": {Domains: []string{"cached.test"}, MX: []sim.MXHost{{Host: "mx.cached.test", IP: "127.0.40.21"}}, STARTTLS: true,
			MTASTS: &sim.SiteMTASTS{Policy: stsPolicy("enforce", "mx.cached.test", int(maxAge/time.Second))}},
	}
	s, srv, _ := stsSetup(t, sites, "")
	start := time.Now()
	// One after the other, so each lookup finds the last one's result
	// (concurrent lookups would share one fetch anyway).
	for i := range 3 {
		inject(t, srv.addrs["mx"], 1, 1, "alice@origin.test", func(int) []string { return []string{fmt.Sprintf("u%d@cached.test", i)} })
		waitFor(t, 20*time.Second, "a delivery", func() bool { return len(messagesTo(s, "cached")) == i+1 })
	}
	if time.Since(start) < maxAge*3/4 {
		if n := s.PolicyFetches("cached"); n != 1 {
			t.Fatalf("policy fetched %d times for 3 messages within its max_age, want 1", n)
		}
	} else {
		t.Logf("the three deliveries took %v, longer than the policy's refresh point: not counting fetches", time.Since(start))
	}
	// Past max_age the policy has expired: the next message fetches it
	// again.
	waitFor(t, 2*maxAge, "the policy's max_age to pass", func() bool { return time.Since(start) > maxAge })
	before := s.PolicyFetches("cached")
	inject(t, srv.addrs["mx"], 1, 1, "alice@origin.test", func(int) []string { return []string{"late@cached.test"} })
	waitFor(t, 20*time.Second, "the fourth delivery", func() bool { return len(messagesTo(s, "cached")) == 4 })
	if n := s.PolicyFetches("cached"); n != before+1 {
		t.Fatalf("policy fetched %d times after its max_age (%d before), want one more", n, before)
	}
}

// TestTLSRootsForRequired: delivery.tlsRoots replaces the system roots
// for tls "required": the fake ISP's certificate, which no system
// trusts, verifies under it (tls_verified "system-roots"), for a domain
// without an MTA-STS policy.
func TestTLSRootsForRequired(t *testing.T) {
	sites := map[string]*sim.Site{
		"private": {Domains: []string{"private.test"}, MX: []sim.MXHost{{Host: "mx.private.test", IP: "127.0.40.31"}}, STARTTLS: true},
	}
	s, srv, logFile := stsSetup(t, sites, `profiles: default: tls: "required"`)
	inject(t, srv.addrs["mx"], 1, 1, "alice@origin.test", func(int) []string { return []string{"a@private.test"} })
	var got map[string]stsEvent
	waitFor(t, 20*time.Second, "the outcome", func() bool {
		got = stsEvents(t, logFile)
		return len(got) == 1
	})
	if ev := got["a@private.test"]; ev.Type != "delivery" || ev.TLSVerified != "system-roots" || ev.TLSPolicy != "" {
		t.Errorf("private.test: %+v; want delivered, tls_verified system-roots, no policy", ev)
	}
	if n := len(messagesTo(s, "private")); n != 1 {
		t.Errorf("private.test received %d messages, want 1", n)
	}
}
