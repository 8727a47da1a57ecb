package delivery

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/mtasts"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/sim"
	"github.com/cuemta/cuemta/tlsrpt"
)

// results collects TLS-RPT results.
type results struct {
	mu  sync.Mutex
	all []tlsrpt.Result
}

func (r *results) Record(x tlsrpt.Result) {
	r.mu.Lock()
	r.all = append(r.all, x)
	r.mu.Unlock()
}

func (r *results) of(domain string) []tlsrpt.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []tlsrpt.Result
	for _, x := range r.all {
		if x.PolicyDomain == domain {
			out = append(out, x)
		}
	}
	return out
}

// TestMTASTSResults: every session with a domain that publishes a policy
// is reported to TLS-RPT once per connection, with the RFC 8460 result
// type of its failure, and the policy; a published policy that cannot
// be fetched is reported as sts-policy-fetch-error while the mail goes
// out as without a policy.
func TestMTASTSResults(t *testing.T) {
	pol := func(mode, mx string) *sim.SiteMTASTS {
		return &sim.SiteMTASTS{Policy: fmt.Sprintf("version: STSv1\nmode: %s\nmx: %s\nmax_age: 86400\n", mode, mx)}
	}
	sites := map[string]*sim.Site{
		"good":    {Domains: []string{"good.test"}, MX: []sim.MXHost{{Host: "mx.good.test", IP: "127.0.41.1"}}, STARTTLS: true, MTASTS: pol("enforce", "mx.good.test")},
		"badcert": {Domains: []string{"badcert.test"}, MX: []sim.MXHost{{Host: "mx.badcert.test", IP: "127.0.41.2", BadCert: true}}, STARTTLS: true, MTASTS: pol("testing", "mx.badcert.test")},
		"plain":   {Domains: []string{"plain.test"}, MX: []sim.MXHost{{Host: "mx.plain.test", IP: "127.0.41.3"}}, MTASTS: pol("enforce", "mx.plain.test")},
		"nohost":  {Domains: []string{"nohost.test"}, MX: []sim.MXHost{{Host: "mx.nohost.test", IP: "127.0.41.4"}}, STARTTLS: true},
	}
	var records []string
	for _, d := range []string{"good.test", "badcert.test", "plain.test", "nohost.test"} {
		records = append(records, fmt.Sprintf(`_mta-sts.%s. 60 IN TXT "v=STSv1; id=1"`, d))
	}
	s, err := sim.New(&sim.Config{Hostname: "sim.test", DNS: sim.DNSConfig{Addr: "127.0.0.1:0", TTL: sim.Duration(time.Minute), Records: records}, Sites: sites}, sim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	res, err := mx.New(mx.Options{Servers: []string{s.DNSAddr()}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := loadTestConfig(t, fmt.Sprintf("delivery: port: %d\nprofiles: default: tls: \"opportunistic\"\n", s.Port()))
	set, err := rules.Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	policy := &Policy{Config: cfg, Rules: set, Generation: 1, TLSRoots: s.CertPool()}
	cache, err := mtasts.New(mtasts.Options{Resolver: res, Fetch: (&mtasts.Fetcher{Resolver: res, Roots: s.CertPool(), Port: s.MTASTSPort(), Timeout: 5 * time.Second}).Fetch})
	if err != nil {
		t.Fatal(err)
	}
	spool, err := queue.Open(t.TempDir(), queue.Options{CompactInterval: -1, Reserve: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &results{}
	e := New(Options{Store: spool, Resolver: res, Policy: func() *Policy { return policy }, PollInterval: 5 * time.Millisecond,
		IdleTimeout: time.Minute, MTASTS: cache, TLSResults: rec})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; spool.Close() })

	send := func(to ...string) {
		env := &queue.Envelope{From: "s@example.org", Recipients: rcpts(to...)}
		if _, err := spool.Enqueue(ctx, env, []byte("Subject: t\r\n\r\nhi\r\n")); err != nil {
			t.Fatal(err)
		}
		e.Wake()
	}
	wait := func(what string, cond func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %d messages, results %+v", what, len(s.Messages()), rec.all)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	send("a@good.test", "b@badcert.test", "c@plain.test", "d@nohost.test")
	// plain.test is deferred: three messages arrive.
	wait("the first deliveries", func() bool { return len(s.Messages()) == 3 && len(rec.of("plain.test")) == 1 })
	// A second message to good.test: one result per connection, not per
	// message.
	send("e@good.test")
	wait("the second delivery", func() bool { return len(s.Messages()) == 4 })
	conns := map[string]int{"good.test": s.Stats().Sites["good"].Connections}
	tests := []struct {
		domain  string
		typ     tlsrpt.PolicyType
		failure tlsrpt.ResultType
		mx      []string
	}{
		{"good.test", tlsrpt.PolicySTS, "", []string{"mx.good.test"}},
		{"badcert.test", tlsrpt.PolicySTS, tlsrpt.CertificateHostMismatch, []string{"mx.badcert.test"}},
		{"plain.test", tlsrpt.PolicySTS, tlsrpt.StartTLSNotSupported, []string{"mx.plain.test"}},
		{"nohost.test", tlsrpt.PolicySTS, tlsrpt.STSPolicyFetchError, nil},
	}
	for _, tc := range tests {
		got := rec.of(tc.domain)
		want := max(conns[tc.domain], 1)
		if len(got) != want {
			t.Errorf("%s: %d results %+v, want %d", tc.domain, len(got), got, want)
			continue
		}
		for _, r := range got {
			if r.PolicyType != tc.typ || r.Failure != tc.failure || fmt.Sprint(r.MXHost) != fmt.Sprint(tc.mx) || r.ReceivingMX != "mx."+tc.domain {
				t.Errorf("%s: %+v; want type %s failure %q mx %v", tc.domain, r, tc.typ, tc.failure, tc.mx)
			}
			if tc.mx != nil && !strings.Contains(strings.Join(r.PolicyString, "\n"), "mx: "+tc.mx[0]) {
				t.Errorf("%s: policy string %q", tc.domain, r.PolicyString)
			}
		}
	}
}

func TestResultTypeOf(t *testing.T) {
	tests := []struct {
		err  error
		want tlsrpt.ResultType
	}{
		{errNoTLS, tlsrpt.StartTLSNotSupported},
		{fmt.Errorf("wrapped: %w", x509.HostnameError{Host: "mx"}), tlsrpt.CertificateHostMismatch},
		{x509.UnknownAuthorityError{}, tlsrpt.CertificateNotTrusted},
		{x509.CertificateInvalidError{Reason: x509.Expired}, tlsrpt.CertificateExpired},
		{x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, tlsrpt.ValidationFailure},
	}
	for _, tc := range tests {
		if got := resultTypeOf(tc.err); got != tc.want {
			t.Errorf("resultTypeOf(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}
