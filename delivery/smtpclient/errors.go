package smtpclient

import (
	"context"
	"errors"
	"net"
)

// NetError is a failure with no server reply behind it: the connection
// could not be made, broke, timed out, or carried something that is not
// SMTP. The connection is unusable afterwards. For delivery it is always
// a temporary failure.
type NetError struct {
	Stage string
	Err   error
}

func (e *NetError) Error() string { return "smtp " + e.Stage + ": " + e.Err.Error() }
func (e *NetError) Unwrap() error { return e.Err }

// Timeout reports whether the failure was a deadline (ours or the
// caller's context).
func (e *NetError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, context.DeadlineExceeded) || (errors.As(e.Err, &ne) && ne.Timeout())
}

// Temporary is always true: a network failure is worth a retry.
func (e *NetError) Temporary() bool { return true }

// UTF8Error is ErrSMTPUTF8Unsupported with what in the message needs
// SMTPUTF8, such as "non-ASCII recipient <jörg@example.de>".
type UTF8Error struct {
	Need string
}

func (e *UTF8Error) Error() string {
	return "smtp mail: " + ErrSMTPUTF8Unsupported.Error() + " (" + e.Need + ")"
}
func (e *UTF8Error) Unwrap() error { return ErrSMTPUTF8Unsupported }

// TLSError means STARTTLS could not be had: not offered (under TLS
// "required"), refused by the server (Err is then its *Reply), or the
// handshake failed. After a failed handshake the connection is closed; a
// caller with opportunistic TLS may redial with TLS "none" and remember
// that for the site.
type TLSError struct {
	Err error
}

func (e *TLSError) Error() string { return "smtp starttls: " + e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// IsTLSFailure reports whether err is a *TLSError.
func IsTLSFailure(err error) bool {
	var te *TLSError
	return errors.As(err, &te)
}

var (
	// ErrNoSTARTTLS: TLS is required but the server does not offer STARTTLS.
	ErrNoSTARTTLS = errors.New("STARTTLS required but not offered")
	// ErrTLSInjection: the server sent data after its STARTTLS reply and
	// before the handshake (a plaintext injection, cf. CVE-2011-0411).
	ErrTLSInjection = errors.New("data after the STARTTLS reply before the handshake")
	// ErrAuthWithoutTLS: credentials are only sent over TLS.
	ErrAuthWithoutTLS = errors.New("refusing AUTH over a connection without TLS")
	// ErrAuthUnsupported: the server does not offer AUTH PLAIN.
	ErrAuthUnsupported = errors.New("server does not offer AUTH PLAIN")
	// ErrSMTPUTF8Unsupported: the message needs SMTPUTF8 (a non-ASCII
	// address, or UTF-8 header fields of SMTPUTF8 mail) and the server
	// does not offer it (RFC 6531 §3.2: the message must not be sent).
	// Nothing was sent: the connection stays usable. For the message it
	// is permanent at that server; another MX of the site may offer it.
	ErrSMTPUTF8Unsupported = errors.New("SMTPUTF8 is required, but the server does not offer it")
	// ErrBadAddress: an envelope address contains characters that would
	// break the command line.
	ErrBadAddress = errors.New("invalid envelope address")
	// ErrMalformedReply: the server's reply is not SMTP.
	ErrMalformedReply = errors.New("malformed reply")
	// ErrClosed: the connection was closed or broke earlier.
	ErrClosed = errors.New("connection closed")
)
