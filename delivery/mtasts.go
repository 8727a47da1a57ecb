package delivery

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/mtasts"
	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/smtpreply"
	"github.com/cuemta/cuemta/tlsrpt"
)

// STSPolicies gives a recipient domain's MTA-STS policy in force (package
// mtasts): nil when none applies; an error when one is published but
// could not be had (and none is cached), for TLS-RPT.
type STSPolicies interface {
	Lookup(ctx context.Context, domain string) (*mtasts.Policy, error)
}

// TLSProfileMTASTS is the profile tls value that asks for MTA-STS even
// when delivery.mtaSTS.enabled is false; without a policy it is
// opportunistic TLS.
const TLSProfileMTASTS = "mta-sts"

// wantsSTS reports whether a job's domain is checked for an MTA-STS
// policy: MX deliveries only (a route or the smarthost is a hop the
// operator chose, not the domain's MX), when MTA-STS is on for every
// domain or the job's profile asks for it.
func (e *Scheduler) wantsSTS(cfg *config.Config, h *hop, eff *config.Effective) bool {
	if e.opts.MTASTS == nil || h.static {
		return false
	}
	return cfg.Delivery.MTASTS.Enabled || eff != nil && eff.TLS() == TLSProfileMTASTS
}

// lookupSTS sets the job's policy, looked up once per attempt before the
// job joins its lane.
func (e *Scheduler) lookupSTS(ctx context.Context, j *job) {
	j.sts, j.stsErr = e.opts.MTASTS.Lookup(ctx, j.domain)
	if ctx.Err() != nil {
		j.stsErr = nil // shutting down: nothing will be sent, nothing to report
	}
	if j.sts != nil && j.sts.Mode == mtasts.None {
		j.sts = nil // RFC 8461 §5: mode none is no policy
	}
}

// stsEnforced reports whether the job's domain is in enforce mode.
func (j *job) stsEnforced() bool { return j != nil && j.sts != nil && j.sts.Mode == mtasts.Enforce }

// stsHosts narrows MX hosts to those an enforce policy allows (RFC 8461
// §5: the sender delivers only to a matching MX). When none matches, all
// are kept: the connection may serve the lane's other domains, and the
// job is deferred on it (checkSTS).
func stsHosts(j *job, hosts []string) []string {
	if !j.stsEnforced() {
		return hosts
	}
	var ok []string
	for _, h := range hosts {
		if j.sts.MatchesMX(h) {
			ok = append(ok, h)
		}
	}
	if len(ok) == 0 {
		return hosts
	}
	return ok
}

// connSecurity is what one connection proved about its certificate,
// computed once, and the policy domains already reported for it.
type connSecurity struct {
	once     sync.Once
	pkixErr  error // nil: a certificate valid for the MX host under the trust roots
	mu       sync.Mutex
	recorded map[string]bool
}

// security returns the connection's record, made on first use; forget
// drops it when the connection ends.
func (l *lane) security(conn *smtpclient.Conn) *connSecurity {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.secs == nil {
		l.secs = map[*smtpclient.Conn]*connSecurity{}
	}
	s, ok := l.secs[conn]
	if !ok {
		s = &connSecurity{recorded: map[string]bool{}}
		l.secs[conn] = s
	}
	return s
}

func (l *lane) forget(conn *smtpclient.Conn) {
	l.mu.Lock()
	delete(l.secs, conn)
	l.mu.Unlock()
}

// verifyPKIX checks the session's certificate chain for host against
// roots (nil: the system roots), whatever the handshake checked: an
// opportunistic handshake verifies nothing, and MTA-STS needs the answer
// (RFC 8461 §4.2: a valid PKIX certificate naming the MX host).
func verifyPKIX(conn *smtpclient.Conn, host string, roots *x509.CertPool, now time.Time) error {
	st := conn.TLSState()
	if st == nil {
		return errNoTLS
	}
	if len(st.PeerCertificates) == 0 {
		return errors.New("the server sent no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := st.PeerCertificates[0].Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: now})
	return err
}

var errNoTLS = errors.New("the session is not encrypted (no STARTTLS)")

// checkSTS decides a job on an open connection under its domain's
// MTA-STS policy (RFC 8461 §5): the MX host must match one of the
// policy's mx patterns, and the session must be TLS with a certificate
// valid for the host. It fills the job's TLS outcome, reports the
// session to TLS-RPT once per connection and domain, and returns false
// when an enforce policy refuses the connection: the job is then
// deferred, not a byte of it sent.
func (l *lane) checkSTS(conn *smtpclient.Conn, host string, j *job, t *TLSOutcome) bool {
	e := l.site.sched
	if conn.TLSAuth() == TLSVerifiedDANE {
		// The host's authenticated TLSA records were checked in the
		// handshake: DANE takes precedence over MTA-STS (RFC 8461 §2), and
		// its result is the one reported (policy type tlsa).
		return true
	}
	if j.sts == nil {
		if j.stsErr != nil {
			// Published but not to be had: delivery goes on as without a
			// policy (RFC 8461 §5), and the domain hears of it.
			kind := tlsrpt.STSPolicyFetchError
			if errors.Is(j.stsErr, mtasts.ErrInvalid) {
				kind = tlsrpt.STSPolicyInvalid
			}
			l.recordSTS(conn, host, j, tlsrpt.PolicySTS, kind, j.stsErr.Error())
		}
		return true
	}
	p := j.sts
	t.Policy = "mta-sts/" + string(p.Mode)
	var why error
	kind := tlsrpt.ResultType("")
	if !p.MatchesMX(host) {
		why, kind = fmt.Errorf("MX host %s matches none of the policy's mx patterns %v", host, p.MX), tlsrpt.ValidationFailure
	} else {
		sec := l.security(conn)
		sec.once.Do(func() {
			sec.pkixErr = verifyPKIX(conn, host, e.opts.Policy().TLSRoots, e.opts.Now())
		})
		if sec.pkixErr != nil {
			why, kind = sec.pkixErr, resultTypeOf(sec.pkixErr)
		}
	}
	if why == nil {
		t.Verified = TLSVerifiedMTASTS
		l.recordSTS(conn, host, j, tlsrpt.PolicySTS, "", "")
		return true
	}
	t.Failure = why.Error()
	l.recordSTS(conn, host, j, tlsrpt.PolicySTS, kind, why.Error())
	if p.Mode == mtasts.Testing {
		// RFC 8461 §5: testing reports and delivers as without a policy.
		e.opts.Logger.Warn("mta-sts testing: the session would fail the policy", "domain", j.domain, "mx", host, "reason", why)
		return true
	}
	// RFC 3463 §3.8: X.7.5 cryptographic failure; 451 (RFC 5321 §4.2.3)
	// keeps the message queued until a session satisfies the policy.
	j.deferAll(time.Time{}, smtpreply.New(451, "4.7.5", fmt.Sprintf("MTA-STS policy of %s (enforce): %v; not sent", j.domain, why)))
	return false
}

// stsDialFailed is the reply of a job whose connection could not be had
// with TLS while its domain is in enforce mode (RFC 8461 §5: no clear
// text), and the TLS-RPT report of it.
func (l *lane) stsDialFailed(j *job, host string, err error) (smtpreply.Reply, bool) {
	if j.sts == nil || !smtpclient.IsTLSFailure(err) {
		return smtpreply.Reply{}, false
	}
	l.recordSTS(nil, host, j, tlsrpt.PolicySTS, resultTypeOf(err), err.Error())
	if !j.stsEnforced() {
		return smtpreply.Reply{}, false
	}
	j.tls = &TLSOutcome{Verified: TLSVerifiedNone, Policy: "mta-sts/" + string(j.sts.Mode), Failure: err.Error()}
	// RFC 3463 §3.8 X.7.5 cryptographic failure.
	return smtpreply.New(451, "4.7.5", fmt.Sprintf("MTA-STS policy of %s (enforce) requires TLS, and %s: %v; not sent", j.domain, host, err)), true
}

// recordSTS tells TLS-RPT one session's result, once per connection and
// policy domain (conn nil: a connection that could not be set up).
func (l *lane) recordSTS(conn *smtpclient.Conn, host string, j *job, pt tlsrpt.PolicyType, kind tlsrpt.ResultType, reason string) {
	e := l.site.sched
	if e.opts.TLSResults == nil {
		return
	}
	if conn != nil {
		sec := l.security(conn)
		sec.mu.Lock()
		seen := sec.recorded[j.domain]
		sec.recorded[j.domain] = true
		sec.mu.Unlock()
		if seen {
			return
		}
	}
	r := tlsrpt.Result{PolicyDomain: j.domain, PolicyType: pt, Failure: kind, ReceivingMX: host, Reason: reason}
	if j.sts != nil {
		r.PolicyString, r.MXHost = j.sts.Lines(), j.sts.MX
	}
	if conn != nil {
		r.SendingIP, r.ReceivingIP = addrIP(conn.LocalAddr()), addrIP(conn.RemoteAddr())
	}
	e.recordTLSResult(j, r)
}

func addrIP(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.Addr().String()
}
