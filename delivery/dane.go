package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/dane"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/delivery/smtpclient"
	"github.com/cuemta/cuemta/tlsrpt"
)

// DANE for SMTP (RFC 7672), per MX host.
//
// With dns.dnssec "trusted" and the profile's dane setting on, an MX host
// of a domain whose MX RRset came authenticated (RFC 7672 §2.2.1) has its
// TLSA records at _25._tcp.<host> looked up before it is dialled. When
// they are authenticated and at least one is usable (DANE-EE or DANE-TA,
// package dane), STARTTLS is mandatory and the handshake succeeds only
// with a certificate chain they match: a host that does not offer
// STARTTLS or whose certificate does not match is not used, the next MX
// host is tried, and when none is left the mail is deferred with 451
// 4.7.5, never sent in clear (RFC 7672 §2.2). Authenticated TLSA
// records none of which is usable still make STARTTLS mandatory, without
// authentication. A TLSA lookup that fails for a host in a signed zone
// makes that host unusable in the same way (RFC 7672 §2.1.1), deferred
// with 451 4.4.3.
//
// DANE comes before MTA-STS and the profile's tls: a host DANE applies to
// is reached that way whatever they say.
//
// A connection carries mail of every domain of its site. Once any domain
// of the site has come with a secure MX RRset, the lane applies the hosts'
// TLSA records to all of its connections (stricter, never weaker, for
// the others); a job of a secure domain that finds itself on a connection
// dialled before that is put back and the connection is replaced.

// TLSAResolver is the part of a Resolver that finds TLSA records; a
// Resolver without it never applies DANE.
type TLSAResolver interface {
	LookupTLSA(ctx context.Context, host string, port int) (*mx.TLSAResult, error)
}

// daneHost is what DANE requires of one MX host.
type daneHost struct {
	host    string
	records []dane.Record // the authenticated TLSA RRset
	usable  []dane.Record // those usable for SMTP; none: TLS without authentication
}

// daneError is a host DANE would not let us use.
type daneError struct {
	host     string
	enhanced string // RFC 3463 code of the deferral
	err      error
}

func (e *daneError) Error() string { return "DANE: " + e.host + ": " + e.err.Error() }
func (e *daneError) Unwrap() error { return e.err }

// daneReply is the reply a DANE failure is recorded with: no server said
// it (code 0, recorded as 451), the enhanced code says why: 4.7.5
// (RFC 3463 §3.8: cryptographic failure) or 4.4.3 (§3.5: directory server
// failure, the TLSA lookup).
func daneReply(err error) (smtpclient.Reply, bool) {
	var de *daneError
	if !errors.As(err, &de) {
		return smtpclient.Reply{}, false
	}
	return smtpclient.Reply{Code: 0, Enhanced: de.enhanced, Text: err.Error(), Stage: smtpclient.StageSTARTTLS}, true
}

// daneApplies reports whether DANE is to be looked for at the hosts of h.
func (l *lane) daneApplies(h *hop, eff *config.Effective) (TLSAResolver, bool) {
	e := l.site.sched
	tr, ok := e.opts.Resolver.(TLSAResolver)
	if !ok || h.static || !eff.DANE() || !e.opts.Policy().Config.DNS.TrustAD() {
		return nil, false
	}
	l.mu.Lock()
	secure := l.daneMX || h.secure
	l.mu.Unlock()
	return tr, secure // RFC 7672 §2.2.1: only MX hosts obtained securely
}

// daneFor decides DANE for one host of h before it is dialled: nil when
// DANE does not apply to it (no authenticated TLSA records).
func (l *lane) daneFor(ctx context.Context, h *hop, host string, eff *config.Effective) (*daneHost, error) {
	tr, ok := l.daneApplies(h, eff)
	if !ok {
		return nil, nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil, nil // an address has no TLSA owner name
	}
	port, err := strconv.Atoi(h.port)
	if err != nil {
		return nil, nil
	}
	res, err := tr.LookupTLSA(ctx, host, port)
	if err != nil {
		return nil, &daneError{host: host, enhanced: "4.4.3", err: fmt.Errorf("TLSA lookup failed: %w", err)}
	}
	if !res.Secure || len(res.Records) == 0 {
		return nil, nil // RFC 7672 §2.2: insecure or absent TLSA records: no DANE
	}
	recs := dane.FromDNS(res.Records)
	return &daneHost{host: host, records: recs, usable: dane.Usable(recs)}, nil
}

// configure makes opts require what d requires. names are DANE-TA's
// reference identifiers: the MX host and the destination domain (RFC
// 7672 §3.2.2).
func (d *daneHost) configure(opts *smtpclient.Options, names []string, now func() time.Time) {
	opts.TLS = smtpclient.TLSRequired // RFC 7672 §2.2: STARTTLS is mandatory
	if len(d.usable) == 0 {
		// Encryption is still promised by the records, but nothing to
		// authenticate with: the certificate is not checked.
		opts.TLSConfig = &tls.Config{ServerName: d.host, InsecureSkipVerify: true}
		opts.TLSAuth = ""
		return
	}
	usable := d.usable
	opts.TLSConfig = &tls.Config{
		ServerName: d.host, // RFC 7672 §8.1: SNI with the MX host name
		// The chain is checked against the TLSA records, not the system's
		// roots: DANE-EE certificates are often self-signed.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return dane.Verify(cs.PeerCertificates, usable, names, now())
		},
	}
	opts.TLSAuth = TLSVerifiedDANE
}

// daneNames are the reference identifiers for h's host.
func daneNames(h *hop, host string) []string {
	names := []string{host}
	if h.domain != "" && h.domain != host {
		names = append(names, h.domain)
	}
	return names
}

// daneDialed reports the outcome of dialling addr of a DANE host to
// TLS-RPT, and turns a TLS failure into a daneError (the host is unusable,
// never retried in clear).
func (l *lane) daneDialed(h *hop, d *daneHost, addr string, local netip.Addr, conn *smtpclient.Conn, err error) error {
	res := tlsrpt.Result{PolicyDomain: h.domain, PolicyType: tlsrpt.PolicyTLSA, MXHost: []string{d.host}, ReceivingMX: d.host, ReceivingIP: addr}
	for _, r := range d.records {
		res.PolicyString = append(res.PolicyString, r.String())
	}
	if local.IsValid() {
		res.SendingIP = local.String()
	}
	if err == nil {
		if a := conn.LocalAddr(); a.IsValid() {
			res.SendingIP = a.Addr().String()
		}
		l.recordDANE(res)
		return nil
	}
	if !smtpclient.IsTLSFailure(err) {
		return err // not a TLS negotiation: the host was not reached
	}
	res.Failure = daneFailure(err)
	res.Reason = err.Error()
	l.recordDANE(res)
	return &daneError{host: d.host, enhanced: "4.7.5", err: err}
}

// daneFailure is the RFC 8460 §4.3 result type of a failed DANE session.
func daneFailure(err error) tlsrpt.ResultType {
	switch {
	case errors.Is(err, smtpclient.ErrNoSTARTTLS):
		return tlsrpt.StartTLSNotSupported
	case errors.Is(err, dane.ErrNameMismatch):
		return tlsrpt.CertificateHostMismatch
	case errors.Is(err, dane.ErrExpired):
		return tlsrpt.CertificateExpired
	case errors.Is(err, dane.ErrNoMatch), errors.Is(err, dane.ErrChain), errors.Is(err, dane.ErrNoUsable):
		return tlsrpt.TLSAInvalid
	}
	var r *smtpclient.Reply
	if errors.As(err, &r) {
		return tlsrpt.StartTLSNotSupported // STARTTLS refused
	}
	return tlsrpt.ValidationFailure
}

// daneLookupFailed reports a TLSA lookup failure to TLS-RPT.
func (l *lane) daneLookupFailed(h *hop, host string, err error) {
	l.recordDANE(tlsrpt.Result{PolicyDomain: h.domain, PolicyType: tlsrpt.PolicyTLSA, MXHost: []string{host},
		ReceivingMX: host, Failure: tlsrpt.DNSSECInvalid, Reason: err.Error()})
}

// recordDANE tells TLS-RPT one result of a host DANE applies to. It is
// per host, not per job, so report mail over such a host is counted too.
func (l *lane) recordDANE(r tlsrpt.Result) {
	if rec := l.site.sched.opts.TLSResults; rec != nil {
		rec.Record(r)
	}
}

// daneRequeue puts j back when conn does not give it what DANE asks of
// host: the connection was dialled before a domain with a secure MX RRset
// came to the lane (daneApplies). It reports whether it did; the caller
// then closes conn, and the next connection applies DANE.
func (l *lane) daneRequeue(ctx context.Context, conn *smtpclient.Conn, host string, j *job) bool {
	if j.hop == nil || !j.hop.secure || conn.TLSAuth() == TLSVerifiedDANE {
		return false
	}
	d, err := l.daneFor(ctx, j.hop, host, l.profile())
	if err == nil && (d == nil || (len(d.usable) == 0 && conn.TLS())) {
		return false
	}
	l.mu.Lock()
	l.daneMX = true
	l.queue = slices.Insert(l.queue, 0, j)
	l.spawnLocked(l.site.sched.opts.Now())
	l.mu.Unlock()
	l.notify()
	return true
}
