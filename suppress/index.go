package suppress

import (
	"errors"
	"hash/maphash"
	"math"
	"sort"
	"time"
)

// slot is one entry of the index: 20 bytes, no pointers, so a million
// slots are one allocation the garbage collector does not scan.
type slot struct {
	off     uint32 // the key "tenant\x00address" in the arena
	klen    uint16
	source  uint8
	live    bool
	reason  uint32 // index into index.reasons
	added   uint32 // Unix seconds (until 2106)
	expires uint32 // Unix seconds; 0: never
}

// index is the in-memory form of the list. It is not safe for concurrent
// use: Store holds its lock around every call.
type index struct {
	seed   maphash.Seed
	byHash map[uint64]uint32 // hash of the key → slot number
	// overflow holds the keys whose hash another key already has: a
	// collision of 64-bit hashes, so in practice empty.
	overflow  map[string]uint32
	slots     []slot
	arena     []byte
	reasons   []string
	reasonIdx map[string]uint32
	live      int
}

func newIndex() *index {
	return &index{seed: maphash.MakeSeed(), byHash: map[uint64]uint32{}, overflow: map[string]uint32{},
		reasons: []string{""}, reasonIdx: map[string]uint32{"": 0}}
}

func (x *index) hash(tenant, addr string) uint64 {
	var h maphash.Hash
	h.SetSeed(x.seed)
	h.WriteString(tenant)
	h.WriteByte(0)
	h.WriteString(addr)
	return h.Sum64()
}

// keyIs reports whether slot s holds tenant and addr, without allocating.
func (x *index) keyIs(s *slot, tenant, addr string) bool {
	if int(s.klen) != len(tenant)+1+len(addr) {
		return false
	}
	k := x.arena[s.off : s.off+uint32(s.klen)]
	return string(k[:len(tenant)]) == tenant && k[len(tenant)] == 0 && string(k[len(tenant)+1:]) == addr
}

// find returns the slot number of tenant and addr, live or dead.
func (x *index) find(tenant, addr string) (uint32, bool) {
	n, ok := x.byHash[x.hash(tenant, addr)]
	if !ok {
		return 0, false
	}
	if x.keyIs(&x.slots[n], tenant, addr) {
		return n, true
	}
	if len(x.overflow) == 0 {
		return 0, false
	}
	n, ok = x.overflow[tenant+"\x00"+addr]
	return n, ok
}

// lookup returns the live, unexpired entry of tenant and addr.
func (x *index) lookup(tenant, addr string, now time.Time) (*slot, bool) {
	n, ok := x.find(tenant, addr)
	if !ok {
		return nil, false
	}
	s := &x.slots[n]
	if !s.live || s.expired(now) {
		return nil, false
	}
	return s, true
}

func (s *slot) expired(now time.Time) bool {
	return s.expires != 0 && int64(s.expires) <= now.Unix()
}

var errIndexFull = errors.New("suppression index full (4 GiB of addresses)")

// put adds or replaces an entry (the address already normalised).
func (x *index) put(e *Entry) error {
	reason, ok := x.reasonIdx[e.Reason]
	if !ok {
		reason = uint32(len(x.reasons))
		x.reasons = append(x.reasons, e.Reason)
		x.reasonIdx[e.Reason] = reason
	}
	s := slot{source: sourceCode(e.Source), live: true, reason: reason, added: unix32(e.Added), expires: unix32(e.Expires)}
	if n, ok := x.find(e.Tenant, e.Address); ok {
		old := &x.slots[n]
		if !old.live {
			x.live++
		}
		s.off, s.klen = old.off, old.klen
		*old = s
		return nil
	}
	klen := len(e.Tenant) + 1 + len(e.Address)
	if len(x.arena)+klen > math.MaxUint32 || klen > math.MaxUint16 {
		return errIndexFull
	}
	s.off, s.klen = uint32(len(x.arena)), uint16(klen)
	x.arena = append(x.arena, e.Tenant...)
	x.arena = append(x.arena, 0)
	x.arena = append(x.arena, e.Address...)
	n := uint32(len(x.slots))
	x.slots = append(x.slots, s)
	h := x.hash(e.Tenant, e.Address)
	if _, taken := x.byHash[h]; taken {
		x.overflow[e.Tenant+"\x00"+e.Address] = n
	} else {
		x.byHash[h] = n
	}
	x.live++
	return nil
}

// remove marks an entry dead; compaction reclaims its slot.
func (x *index) remove(tenant, addr string) bool {
	n, ok := x.find(tenant, addr)
	if !ok || !x.slots[n].live {
		return false
	}
	x.slots[n].live = false
	x.live--
	return true
}

// entry expands a slot.
func (x *index) entry(s *slot) Entry {
	k := string(x.arena[s.off : s.off+uint32(s.klen)])
	var tenant, addr string
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			tenant, addr = k[:i], k[i+1:]
			break
		}
	}
	e := Entry{Tenant: tenant, Address: addr, Reason: x.reasons[s.reason], Source: sourceName(s.source),
		Added: time.Unix(int64(s.added), 0).UTC()}
	if s.expires != 0 {
		e.Expires = time.Unix(int64(s.expires), 0).UTC()
	}
	return e
}

// each calls fn for every live, unexpired entry in tenant then address
// order, until fn returns false.
func (x *index) each(now time.Time, fn func(Entry) bool) {
	order := make([]uint32, 0, x.live)
	for i := range x.slots {
		if s := &x.slots[i]; s.live && !s.expired(now) {
			order = append(order, uint32(i))
		}
	}
	key := func(n uint32) string { s := &x.slots[n]; return string(x.arena[s.off : s.off+uint32(s.klen)]) }
	sort.Slice(order, func(i, j int) bool { return key(order[i]) < key(order[j]) })
	for _, n := range order {
		if !fn(x.entry(&x.slots[n])) {
			return
		}
	}
}

func unix32(t time.Time) uint32 {
	if t.IsZero() {
		return 0
	}
	u := t.Unix()
	if u <= 0 {
		return 1
	}
	if u > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(u)
}

// Sources of an entry.
const (
	SourceBounce    = "bounce"
	SourceComplaint = "complaint"
	SourceOperator  = "operator"
	SourceImport    = "import"
)

// Sources lists the valid sources.
var Sources = []string{SourceBounce, SourceComplaint, SourceOperator, SourceImport}

func sourceCode(s string) uint8 {
	for i, n := range Sources {
		if n == s {
			return uint8(i + 1)
		}
	}
	return 0
}

func sourceName(c uint8) string {
	if c == 0 || int(c) > len(Sources) {
		return ""
	}
	return Sources[c-1]
}
