package hooks

import (
	"crypto/rand"
	"encoding/hex"
	"sync"

	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/internal/msgheader"
)

// Record is one event as a hook receives it: the delivery log's record
// (deliverylog.Event, its fields inline: message_id is the queue id) plus
// what a sender needs to match it to its own mail.
type Record struct {
	// EventID is unique per event and the same in every hook's copy:
	// delivery is at least once, so receivers deduplicate by it.
	EventID string `json:"event_id"`
	deliverylog.Event
	// HeaderMessageID is the message's Message-ID header, as written.
	HeaderMessageID string `json:"header_message_id,omitempty"`
	// Headers are the events.messageHeaders the message has, by the
	// configured name.
	Headers map[string]string `json:"headers,omitempty"`
}

func newEventID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b[:])
}

// msgHeaders is what a record takes from its message.
type msgHeaders struct {
	messageID string
	headers   map[string]string
}

// parseHeaders reads the header block of msg (all of it, or just its
// start) and picks Message-ID and the names asked for. A malformed header
// yields what parsed before the fault: the event matters more.
func parseHeaders(msg []byte, names []string) msgHeaders {
	h, _ := msgheader.ParseHeader(msg)
	return headersOf(h, names)
}

// headersOf picks Message-ID and the names asked for from a parsed header.
func headersOf(h msgheader.Header, names []string) msgHeaders {
	out := msgHeaders{messageID: h.Get("Message-ID")}
	for _, n := range names {
		if v := h.Values(n); len(v) > 0 {
			if out.headers == nil {
				out.headers = map[string]string{}
			}
			out.headers[n] = v[0]
		}
	}
	return out
}

// headerCache keeps the headers of recent messages by queue id, so that a
// message's delivery events do not each read its body from the spool.
// FIFO: a message evicted is read again, which costs time, not accuracy.
type headerCache struct {
	mu   sync.Mutex
	m    map[string]msgHeaders
	ring []string
	pos  int
}

const headerCacheSize = 16384

func (c *headerCache) get(id string) (msgHeaders, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[id]
	return h, ok
}

func (c *headerCache) put(id string, h msgHeaders) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]msgHeaders{}
		c.ring = make([]string, headerCacheSize)
	}
	if _, ok := c.m[id]; ok {
		return
	}
	if old := c.ring[c.pos]; old != "" {
		delete(c.m, old)
	}
	c.ring[c.pos] = id
	c.pos = (c.pos + 1) % len(c.ring)
	c.m[id] = h
}

func (c *headerCache) reset() {
	c.mu.Lock()
	c.m, c.ring, c.pos = nil, nil, 0
	c.mu.Unlock()
}
