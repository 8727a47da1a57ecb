package delivery

import (
	"crypto/tls"

	"github.com/cuemta/cuemta/delivery/smtpclient"
)

// How a delivery's TLS session was authenticated, as the delivery log
// and metrics name it.
const (
	// TLSVerifiedNone: no TLS, or TLS whose certificate was not checked
	// (opportunistic TLS, RFC 7435: encrypted, not authenticated).
	TLSVerifiedNone = "none"
	// TLSVerifiedSystemRoots: the server's certificate chained to the
	// system's roots and named the MX host (tls: "required").
	TLSVerifiedSystemRoots = "system-roots"
	// TLSVerifiedMTASTS: the recipient domain has an MTA-STS policy
	// (enforce or testing) and the session satisfied it: the MX host
	// matched the policy and its certificate was valid for it (RFC 8461
	// §4).
	TLSVerifiedMTASTS = "mta-sts"
	// TLSVerifiedDANE: the server's certificate chain matched the MX
	// host's authenticated TLSA records (RFC 7672, dane.go).
	TLSVerifiedDANE = "dane"
)

// TLSOutcome is the TLS of the connection a delivery used.
type TLSOutcome struct {
	Version  string // "TLS 1.3", or "" without TLS
	Cipher   string // the cipher suite's IANA name
	Verified string // one of the TLSVerified* names
	// Policy is the recipient domain's policy that applied:
	// "mta-sts/enforce", "mta-sts/testing", or "" for none.
	Policy string
	// Failure is why the session did not satisfy Policy: under testing
	// the message was delivered all the same; under enforce it was not.
	Failure string
}

// tlsOutcomeOf reads a connection's TLS state. A certificate counts as
// verified only when Go built a chain for it (VerifiedChains), which it
// does exactly when verification ran and passed.
func tlsOutcomeOf(conn *smtpclient.Conn) TLSOutcome {
	st := conn.TLSState()
	if st == nil {
		return TLSOutcome{Verified: TLSVerifiedNone}
	}
	o := TLSOutcome{Version: tls.VersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite), Verified: TLSVerifiedNone}
	if len(st.VerifiedChains) > 0 {
		o.Verified = TLSVerifiedSystemRoots
	}
	if a := conn.TLSAuth(); a != "" {
		o.Verified = a // the handshake succeeded only if that check passed
	}
	return o
}
