package reception

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// AUTH failures are counted per client (its IP, an IPv6 client by its /64:
// limitKey) and per user name, across connections, listeners and reloads,
// because a guesser that is only limited per connection simply reconnects.
//
// Each key gets a few failures free. After that it is in back-off: an
// attempt is refused, without a password check, until the back-off since
// its latest failure has passed; then one attempt is allowed, and if it
// fails too the back-off doubles, up to a ceiling. A refused attempt is
// answered 421 4.7.0 and the connection closed (RFC 4954 §4 lets a server
// limit attempts; RFC 5321 §3.8 421 closing), and it neither costs
// bcrypt time nor lengthens the back-off. An attempt counts from the moment
// its check starts, so many connections guessing at once get no more
// checks than one connection guessing in turn.
//
// The numbers follow Dovecot's auth penalty (a delay from 2 s, doubling,
// forgotten after an hour without failure) with a longer ceiling, since here
// the client is refused rather than kept waiting: a client gets 5 failures
// free, a user name 10 (a user's failures may come from anywhere, so locking
// a user out is a last resort against guessing spread over many addresses);
// then 10 s, 20 s, 40 s ... up to 15 minutes. A successful login clears the
// client's own count and no other: the user's count stays, since the
// failures against a user may have come from elsewhere. An entry is
// forgotten an hour after its latest failure, and each table holds at most
// maxThrottleEntries (the least recently failed entry makes room), so
// memory stays bounded whatever a client floods.
const (
	authFreeFailuresIP   = 5
	authFreeFailuresUser = 10
	authBackoffBase      = 10 * time.Second
	authBackoffMax       = 15 * time.Minute
	authForget           = time.Hour
	maxThrottleEntries   = 1 << 16
	// maxKeyLen bounds the bytes a user name (or a tenant) takes in a
	// table; a longer one is stored as its SHA-256.
	maxKeyLen = 64
)

// authThrottle holds the failure counts per client and per user.
type authThrottle struct {
	mu   sync.Mutex
	ip   failTable
	user failTable
}

func newAuthThrottle() *authThrottle {
	return &authThrottle{
		ip:   failTable{free: authFreeFailuresIP, max: maxThrottleEntries, m: map[string]*failures{}},
		user: failTable{free: authFreeFailuresUser, max: maxThrottleEntries, m: map[string]*failures{}},
	}
}

// Why an attempt was refused (also the auth_refused metric's reason).
const (
	refusedClientIP   = "client_ip"
	refusedUser       = "user"
	refusedConnection = "connection"
	refusedBusy       = "busy"
)

// authTicket is one attempt admitted by begin; exactly one of its
// methods ends it.
type authTicket struct {
	t        *authThrottle
	ip, user string
}

// ipRefused reports whether the client's key is in back-off now, so AUTH
// can be refused before the client sends any credentials.
func (t *authThrottle) ipRefused(ip string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ip.refused(ip, now)
}

// begin admits an attempt by client ip for user, or says which key
// refuses it ("" and a ticket when admitted).
func (t *authThrottle) begin(ip, user string, now time.Time) (*authTicket, string) {
	user = boundedKey(user)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.ip.refused(ip, now):
		return nil, refusedClientIP
	case t.user.refused(user, now):
		return nil, refusedUser
	}
	t.ip.start(ip, now)
	t.user.start(user, now)
	return &authTicket{t: t, ip: ip, user: user}, ""
}

// failed ends the attempt as a failure: both keys count it.
func (a *authTicket) failed(now time.Time) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	a.t.ip.end(a.ip, now, true)
	a.t.user.end(a.user, now, true)
}

// succeeded ends the attempt as a login: the client's count is cleared;
// the user's is left as it was.
func (a *authTicket) succeeded(now time.Time) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	delete(a.t.ip.m, a.ip)
	a.t.user.end(a.user, now, false)
}

// cancel ends an attempt whose password was never checked (no bcrypt
// slot came free): it counts for neither key.
func (a *authTicket) cancel(now time.Time) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	a.t.ip.end(a.ip, now, false)
	a.t.user.end(a.user, now, false)
}

// userKey is the table key of a user name, bounded in size.
func boundedKey(user string) string {
	if len(user) <= maxKeyLen {
		return user
	}
	sum := sha256.Sum256([]byte(user))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// failTable is the failure count per key of one kind. Its methods run
// under authThrottle.mu.
type failTable struct {
	free int // failures before back-off
	max  int // entries
	m    map[string]*failures
}

type failures struct {
	failed   int       // failed attempts since the entry was made
	inflight int       // attempts begun and not yet ended
	last     time.Time // the latest failure (or, before any, the first attempt)
}

// backoff is how long a key that has failed n times (n >= free) is
// refused after its latest failure: authBackoffBase, doubling per
// failure, at most authBackoffMax.
func (t *failTable) backoff(n int) time.Duration {
	d := authBackoffBase
	for i := t.free; i < n && d < authBackoffMax; i++ {
		d *= 2
	}
	return min(d, authBackoffMax)
}

// refused reports whether an attempt for key must be refused now. Below
// the free failures, attempts may run side by side up to the number left;
// past them, one at a time and only once the back-off has passed.
func (t *failTable) refused(key string, now time.Time) bool {
	f := t.m[key]
	if f == nil {
		return false
	}
	if f.inflight == 0 && now.Sub(f.last) > authForget {
		delete(t.m, key)
		return false
	}
	if f.failed+f.inflight < t.free {
		return false
	}
	if f.failed < t.free || f.inflight > 0 {
		return true // the remaining attempts are all in flight
	}
	return now.Before(f.last.Add(t.backoff(f.failed)))
}

func (t *failTable) start(key string, now time.Time) {
	f := t.m[key]
	if f == nil {
		if len(t.m) >= t.max {
			t.makeRoom(now)
		}
		f = &failures{last: now}
		t.m[key] = f
	}
	f.inflight++
}

func (t *failTable) end(key string, now time.Time, failed bool) {
	f := t.m[key]
	if f == nil {
		return // cleared by a success, or evicted for room
	}
	if f.inflight > 0 {
		f.inflight--
	}
	if failed {
		f.failed++
		f.last = now
	}
	if f.failed == 0 && f.inflight == 0 {
		delete(t.m, key)
	}
}

// makeRoom drops the forgotten entries or, when none is, the entry that
// failed least recently.
func (t *failTable) makeRoom(now time.Time) {
	var oldest string
	var oldestAt time.Time
	for k, f := range t.m {
		if f.inflight == 0 && now.Sub(f.last) > authForget {
			delete(t.m, k)
			continue
		}
		if oldest == "" || f.last.Before(oldestAt) {
			oldest, oldestAt = k, f.last
		}
	}
	if len(t.m) >= t.max {
		delete(t.m, oldest)
	}
}
