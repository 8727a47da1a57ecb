package reception

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"

	"github.com/cuemta/cuemta/config"
	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

// AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN
// (draft-murchison-sasl-login), offered only after STARTTLS: both send the
// password in clear.

// maxAuthFailures is how many failed AUTH attempts a connection gets before
// the next one is answered 421 and the connection closed (RFC 4954 §4
// allows a server to limit attempts). Across connections, the Guard's
// throttle counts failures per client and per user (see throttle.go).
const maxAuthFailures = 3

var (
	errAuthFailed        = newReply(535, "5.7.8", "Authentication credentials invalid")                          // RFC 4954 §6
	errAuthNeedsTLS      = newReply(538, "5.7.11", "Encryption required for requested authentication mechanism") // RFC 4954 §6
	errAuthUnknownMech   = newReply(504, "5.5.4", "Unrecognized authentication type")                            // RFC 4954 §6
	errAuthNotAvailable  = newReply(502, "5.5.1", "AUTH not available")                                          // RFC 5321 §4.2.4
	errAuthInTransaction = newReply(503, "5.5.1", "AUTH not permitted during a mail transaction")                // RFC 4954 §4
	errAuthTooMany       = newReply(421, "4.7.0", "Too many authentication failures, closing connection")
	// RFC 4954 §4 (a server may limit attempts), RFC 5321 §3.8 (421, then close).
	errAuthThrottledIP   = newReply(421, "4.7.0", "Too many authentication failures from your address, try again later")
	errAuthThrottledUser = newReply(421, "4.7.0", "Too many authentication failures for this user, try again later")
	errAuthBusy          = newReply(454, "4.7.0", "Temporary authentication failure, try again later") // RFC 4954 §6
	errAuthMalformed     = newReply(501, "5.5.2", "Malformed authentication response")                 // RFC 4954 §4
)

// authenticator checks passwords against the listener's bcrypt hashes.
type authenticator struct {
	users map[string][]byte
	// dummy is compared against when the user is unknown, so that a
	// failure takes as long for unknown users as for known ones and does
	// not reveal which exist.
	dummy []byte
	// sem bounds concurrent bcrypt comparisons to part of the CPUs (the
	// Guard's slots, shared by every listener and snapshot): each one is
	// deliberately expensive, and a flood of AUTH must not starve the
	// rest of the process. wait bounds the wait for a slot.
	sem  chan struct{}
	wait time.Duration
}

func newAuthenticator(a config.ListenerAuth, g *Guard) (*authenticator, error) {
	au := &authenticator{
		users: make(map[string][]byte, len(a.Users)),
		sem:   g.bcrypt,
		wait:  g.authWait,
	}
	names := make([]string, 0, len(a.Users))
	for u := range a.Users {
		names = append(names, u)
	}
	sort.Strings(names) // report the same bad user first every time
	cost := bcrypt.DefaultCost
	for i, u := range names {
		h := []byte(a.Users[u])
		c, err := bcrypt.Cost(h)
		if err != nil {
			return nil, fmt.Errorf("auth user %q: bad bcrypt hash: %w", u, err)
		}
		if i == 0 || c > cost {
			cost = c
		}
		au.users[u] = h
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("cuemta-no-such-user"), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: dummy hash: %w", err)
	}
	au.dummy = dummy
	return au, nil
}

// check reports whether password is user's, or errAuthBusy when no
// bcrypt slot came free within the wait.
func (a *authenticator) check(user, password string) (bool, error) {
	h, known := a.users[user]
	if !known {
		h = a.dummy
	}
	wait := time.NewTimer(a.wait)
	defer wait.Stop()
	select {
	case a.sem <- struct{}{}:
	case <-wait.C:
		return false, errAuthBusy
	}
	err := bcrypt.CompareHashAndPassword(h, []byte(password))
	<-a.sem
	return known && err == nil, nil
}

// credentialsFunc receives the decoded credentials of a SASL exchange.
type credentialsFunc func(authzid, user, password string) error

// plainServer is the server side of PLAIN (RFC 4616 §2). go-sasl has one,
// but its malformed-response error would reach the client as 454.
type plainServer struct {
	done  bool
	check credentialsFunc
}

func (p *plainServer) Next(resp []byte) ([]byte, bool, error) {
	if p.done {
		return nil, true, errAuthMalformed
	}
	if resp == nil {
		return []byte{}, false, nil // no initial response: empty challenge
	}
	p.done = true
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 {
		return nil, true, errAuthMalformed
	}
	return nil, true, p.check(string(parts[0]), string(parts[1]), string(parts[2]))
}

// loginServer is the server side of LOGIN, which go-sasl does not provide:
// "Username:" then "Password:", the username possibly sent as the
// initial response.
type loginServer struct {
	step  int
	user  string
	check credentialsFunc
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user = string(resp)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check("", l.user, string(resp))
	}
	return nil, true, errAuthMalformed
}

var (
	_ sasl.Server = (*plainServer)(nil)
	_ sasl.Server = (*loginServer)(nil)
)

// AuthMechanisms implements smtp.AuthSession. It lists nothing before
// STARTTLS, so EHLO advertises AUTH only over TLS.
func (s *session) AuthMechanisms() []string {
	if s.srv.auth == nil || !s.tls {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements smtp.AuthSession. go-smtp is told to allow AUTH without
// TLS so that this method, not go-smtp, answers: 538 (RFC 4954 §6) rather
// than go-smtp's 523.
func (s *session) Auth(mech string) (sasl.Server, error) {
	switch {
	case s.srv.auth == nil:
		return nil, errAuthNotAvailable
	case !s.tls:
		return nil, errAuthNeedsTLS
	case s.txn.Load() != nil:
		return nil, errAuthInTransaction
	case s.tc.authFailures.Load() >= maxAuthFailures:
		s.tc.hangup.Store(true)
		s.srv.guard.authRefused(refusedConnection)
		return nil, errAuthTooMany
	case s.srv.guard.auth.ipRefused(s.tc.key, s.srv.guard.now()):
		// Refused before the client sends credentials it would have
		// to send in vain.
		return nil, s.authRefused(refusedClientIP, "")
	}
	switch mech {
	case sasl.Plain:
		return &plainServer{check: s.login}, nil
	case sasl.Login:
		return &loginServer{check: s.login}, nil
	}
	return nil, errAuthUnknownMech
}

// login checks credentials and, on success, authenticates the session.
// The Guard's throttle admits the attempt first: a refused one costs no
// bcrypt time.
func (s *session) login(authzid, user, password string) error {
	g := s.srv.guard
	ticket, refused := g.auth.begin(s.tc.key, user, g.now())
	if ticket == nil {
		return s.authRefused(refused, user)
	}
	ok, err := s.srv.auth.check(user, password)
	if err != nil {
		ticket.cancel(g.now())
		g.authRefused(refusedBusy)
		s.log.Warn("authentication not checked: no bcrypt slot free", "user", user, "waited", s.srv.auth.wait)
		return err
	}
	// Acting for another identity (RFC 4616 §2) is not supported.
	if ok && (authzid == "" || authzid == user) {
		ticket.succeeded(g.now())
		s.user = user
		s.log.Info("authenticated", "user", user)
		return nil
	}
	ticket.failed(g.now())
	g.authFailed()
	n := s.tc.authFailures.Add(1)
	s.log.Warn("authentication failed", "user", user, "failures", n)
	return errAuthFailed
}

// authRefused answers an attempt the throttle refused: 421, and the
// connection closes.
func (s *session) authRefused(reason, user string) error {
	s.srv.guard.authRefused(reason)
	s.tc.hangup.Store(true)
	// Info, not Warn: a guesser makes one of these per connection.
	s.log.Info("authentication refused: too many failures", "by", reason, "user", user)
	if reason == refusedUser {
		return errAuthThrottledUser
	}
	return errAuthThrottledIP
}

var _ smtp.AuthSession = (*session)(nil)
