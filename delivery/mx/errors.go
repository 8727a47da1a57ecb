package mx

import (
	"errors"
	"fmt"
)

// Permanent conditions: the domain (or host) cannot receive mail and a
// retry would get the same answer.
var (
	// ErrNullMX: the domain publishes a single MX "." (RFC 7505 §3).
	ErrNullMX = errors.New("domain accepts no mail (null MX, RFC 7505)")
	// ErrNoSuchDomain: NXDOMAIN (RFC 1035 §4.1.1 RCODE 3).
	ErrNoSuchDomain = errors.New("no such domain")
	// ErrNoAddress: the name exists but has no A or AAAA records.
	ErrNoAddress = errors.New("host has no address records")
)

// ErrTemporary marks failures worth retrying: SERVFAIL, REFUSED, other
// RCODEs, timeouts and network errors.
var ErrTemporary = errors.New("temporary DNS failure")

// LookupError is returned by every lookup. Kind is one of the sentinel
// errors above; Cause carries detail (the RCODE and server, a network
// error) when there is any. errors.Is works on both.
type LookupError struct {
	Name  string // the name queried
	Type  string // "MX", "A", "AAAA"
	Kind  error
	Cause error
}

func (e *LookupError) Error() string {
	s := fmt.Sprintf("dns %s %s: %v", e.Type, e.Name, e.Kind)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *LookupError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// IsPermanent reports whether err means the destination cannot receive
// mail, so the message should bounce rather than be retried.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrNullMX) || errors.Is(err, ErrNoSuchDomain) || errors.Is(err, ErrNoAddress)
}
