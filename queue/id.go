package queue

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// IDs are 16 characters of base32hex (0-9a-v, ASCII order = numeric
// order): 11 for the Unix time in microseconds, strictly increasing within
// a spool so IDs sort by enqueue order, then 5 random ones so that IDs made
// after a clock step back (or by another host) do not collide.
const idAlphabet = "0123456789abcdefghijklmnopqrstuv"

type idGen struct {
	mu   sync.Mutex
	last int64
}

func (g *idGen) next(now time.Time) string {
	us := now.UnixMicro()
	g.mu.Lock()
	if us <= g.last {
		us = g.last + 1
	}
	g.last = us
	g.mu.Unlock()
	var b [16]byte
	v := uint64(us)
	for i := 10; i >= 0; i-- {
		b[i] = idAlphabet[v&31]
		v >>= 5
	}
	r := rand.Uint64()
	for i := 11; i < 16; i++ {
		b[i] = idAlphabet[r&31]
		r >>= 5
	}
	return string(b[:])
}

// maxIDLen keeps IDs short enough for the one-byte length in body frames.
const maxIDLen = 128

// validID accepts caller-chosen IDs that are safe in URLs, file names and
// log lines.
func validID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("spool: invalid message ID %q: length must be 1..%d", id, maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("spool: invalid message ID %q: only A-Z a-z 0-9 - _ . allowed", id)
		}
	}
	return nil
}
