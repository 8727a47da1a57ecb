package smtpclient

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// TLS policies for Options.TLS.
const (
	// TLSOpportunistic uses STARTTLS when offered and carries on in clear
	// text when it is not offered or refused. Without a TLSConfig the
	// certificate is not verified: unauthenticated encryption is still
	// better than clear text (RFC 7435 §1.2).
	TLSOpportunistic = "opportunistic"
	// TLSRequired fails unless STARTTLS succeeds with a verified
	// certificate (for ServerName, unless TLSConfig says otherwise).
	TLSRequired = "required"
	// TLSNone never sends STARTTLS.
	TLSNone = "none"
)

// Default timeouts, from RFC 5321 §4.5.3.2 (which asks for at least these).
const (
	DefaultConnectTimeout = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Minute  // §4.5.3.2.1-4
	DefaultDataTimeout    = 10 * time.Minute // §4.5.3.2.6, the final reply
)

// Options configure Dial.
type Options struct {
	// Addr is the host:port to connect to.
	Addr string
	// LocalAddr is the source address to bind; the zero Addr binds none.
	LocalAddr netip.Addr
	// ServerName is the name for SNI and certificate verification;
	// default: the host of Addr.
	ServerName string
	// EHLO is this client's name (RFC 5321 §4.1.4); default "localhost".
	EHLO string
	// TLS is the STARTTLS policy: TLSOpportunistic (also for ""),
	// TLSRequired or TLSNone.
	TLS string
	// TLSConfig overrides the TLS settings; it is cloned, and ServerName
	// filled in when empty.
	TLSConfig *tls.Config
	// TLSAuth names, for the caller's records, how TLSConfig
	// authenticates the server when that is not by its roots (such as
	// "dane" for a VerifyConnection that checks TLSA records): Conn.TLSAuth
	// returns it once the handshake succeeded.
	TLSAuth string
	// ConnectTimeout bounds the TCP connect.
	ConnectTimeout time.Duration
	// CommandTimeout bounds every read and write of commands and their
	// replies, the greeting and the TLS handshake.
	CommandTimeout time.Duration
	// DataTimeout bounds each write of the message body and the wait for
	// the final reply after ".".
	DataTimeout time.Duration
	// Auth, when set, authenticates with AUTH PLAIN after STARTTLS; it is
	// never sent without TLS.
	Auth *Auth
}

// Auth holds credentials for AUTH PLAIN (RFC 4616).
type Auth struct {
	Username string
	Password string
}

func (o Options) withDefaults() (Options, error) {
	switch o.TLS {
	case "":
		o.TLS = TLSOpportunistic
	case TLSOpportunistic, TLSRequired, TLSNone:
	default:
		return o, fmt.Errorf("smtpclient: unknown TLS policy %q", o.TLS)
	}
	if o.ServerName == "" {
		host, _, err := net.SplitHostPort(o.Addr)
		if err != nil {
			return o, fmt.Errorf("smtpclient: address %q: %w", o.Addr, err)
		}
		o.ServerName = host
	}
	if o.EHLO == "" {
		o.EHLO = "localhost"
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.DataTimeout <= 0 {
		o.DataTimeout = DefaultDataTimeout
	}
	return o, nil
}

func (o Options) tlsConfig() *tls.Config {
	var cfg *tls.Config
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	} else {
		cfg = &tls.Config{InsecureSkipVerify: o.TLS == TLSOpportunistic}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = o.ServerName
	}
	return cfg
}
