package delivery

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"

	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/tlsrpt"
)

// TLS-RPT results (RFC 8460) of sessions to which no MTA-STS or DANE
// policy applied: policy type "no-policy-found", one result per
// connection and recipient domain that used it, when STARTTLS was tried
// (the profile's tls is not "none") on an MX delivery (not a static
// route), or skipped because a handshake to the lane failed within the
// hour (counted as that failure: the session went unencrypted for it). A session shared by jobs of several domains counts once for
// each, as each domain's mail went over it. Report mail itself
// (tlsrpt.ReportListener) is never counted: RFC 8460 §5.3.
//
// dialHosts notes every TLS attempt in the dial's context (noteTLSAttempt);
// work records them once the dial is over (recordTLS).

// tlsNote is what one dial saw of TLS.
type tlsNote struct {
	policy string // the TLS policy of the last attempt
	// plainCause is the failed handshake that made the last attempt go
	// in clear text without trying STARTTLS (the lane's hour of clear
	// text); nil when it did not.
	plainCause error
	// addr is the address of the last attempt (no port): the receiving IP
	// of the connection the dial returned (a clear text redial after a
	// failed handshake goes to the same address).
	addr     string
	failures []tlsFailure
}

type tlsFailure struct {
	host       string
	local, rem string // addresses without ports; local "" when not bound
	err        error
}

type tlsNoteKey struct{}

func withTLSNote(ctx context.Context) (context.Context, *tlsNote) {
	n := &tlsNote{}
	return context.WithValue(ctx, tlsNoteKey{}, n), n
}

// noteTLSAttempt records one dial attempt's TLS: the policy it ran under
// (and plainCause, the failure that made it clear text) and, when
// STARTTLS failed, how.
func noteTLSAttempt(ctx context.Context, host string, o smtpclient.Options, plainCause, err error) {
	n, _ := ctx.Value(tlsNoteKey{}).(*tlsNote)
	if n == nil {
		return
	}
	n.policy, n.plainCause = o.TLS, plainCause
	n.addr, _, _ = net.SplitHostPort(o.Addr)
	if err != nil && smtpclient.IsTLSFailure(err) {
		f := tlsFailure{host: host, rem: n.addr, err: err}
		if o.LocalAddr.IsValid() {
			f.local = o.LocalAddr.String()
		}
		n.failures = append(n.failures, f)
	}
}

// isReportMail reports a job of a TLS report mail (tlsrpt.ReportListener).
// Its sessions are never counted, and RFC 8460 §5.3 wants it delivered
// "despite any TLS-related failures": a policy that would defer other
// mail for a TLS failure should let it through.
func isReportMail(j *job) bool { return j.att.env.Listener == tlsrpt.ReportListener }

// recordTLSResult tells Options.TLSResults of one TLS negotiation for j,
// unless there is no recorder or j is report mail. Every caller (this
// file's no-policy-found results, MTA-STS, DANE) goes through it.
func (e *Scheduler) recordTLSResult(j *job, r tlsrpt.Result) {
	if e.opts.TLSResults == nil || isReportMail(j) {
		return
	}
	e.opts.TLSResults.Record(r)
}

// recordTLS records the TLS of a connection (conn nil: the dial failed)
// for j's domain, once per domain per connection (seen).
func (l *lane) recordTLS(j *job, conn *smtpclient.Conn, host string, n *tlsNote, seen map[string]bool) {
	e := l.site.sched
	if e.opts.TLSResults == nil || seen[j.domain] || isReportMail(j) {
		return
	}
	if j.sts != nil || j.stsErr != nil || (conn != nil && conn.TLSAuth() == TLSVerifiedDANE) {
		return // a policy applied: MTA-STS (checkSTS, stsDialFailed) or DANE (daneDialed) reports it
	}
	l.mu.Lock()
	static := l.hop.static
	l.mu.Unlock()
	if static || n.policy == "" || (n.policy == smtpclient.TLSNone && n.plainCause == nil) {
		return
	}
	seen[j.domain] = true
	base := tlsrpt.Result{PolicyDomain: j.domain, PolicyType: tlsrpt.PolicyNoPolicyFound}
	if n.policy == smtpclient.TLSNone {
		// The lane's hour of clear text after a failed handshake: the
		// session went unencrypted for that failure, so it counts as
		// it, not as a session without TLS that nobody tried.
		if conn != nil {
			r := base
			r.Failure = resultTypeOf(n.plainCause)
			r.Reason = "STARTTLS not tried within an hour of a failed handshake: " + n.plainCause.Error()
			r.SendingIP, r.ReceivingMX, r.ReceivingIP = addrString(conn.LocalAddr().Addr()), host, n.addr
			e.recordTLSResult(j, r)
		}
		return
	}
	remote := n.addr
	failedHere := false
	for _, f := range n.failures {
		r := base
		r.Failure, r.Reason = resultTypeOf(f.err), f.err.Error()
		r.SendingIP, r.ReceivingMX, r.ReceivingIP = f.local, f.host, f.rem
		if r.SendingIP == "" && conn != nil && f.rem == remote {
			r.SendingIP = addrString(conn.LocalAddr().Addr())
		}
		e.recordTLSResult(j, r)
		failedHere = failedHere || f.rem == remote
	}
	if conn == nil {
		return
	}
	r := base
	switch {
	case conn.TLS():
		// Success: the session was encrypted.
	case failedHere:
		return // the failed handshake is the result; the clear text redial is not another
	default:
		// Opportunistic TLS to a server that offers no STARTTLS.
		r.Failure, r.Reason = tlsrpt.StartTLSNotSupported, "STARTTLS not offered"
		r.SendingIP, r.ReceivingMX, r.ReceivingIP = addrString(conn.LocalAddr().Addr()), host, remote
	}
	e.recordTLSResult(j, r)
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// resultTypeOf names a STARTTLS or certificate failure as RFC 8460 §4.3
// does: of a handshake (no-policy sessions) or of the PKIX check an
// MTA-STS policy asks for (verifyPKIX).
func resultTypeOf(err error) tlsrpt.ResultType {
	var host x509.HostnameError
	var inv x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.Is(err, smtpclient.ErrNoSTARTTLS), errors.Is(err, errNoTLS):
		return tlsrpt.StartTLSNotSupported
	case errors.As(err, &host):
		return tlsrpt.CertificateHostMismatch
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return tlsrpt.CertificateExpired
	case errors.As(err, &unknown):
		return tlsrpt.CertificateNotTrusted
	}
	return tlsrpt.ValidationFailure
}
