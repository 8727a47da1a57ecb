package suppress

import (
	"errors"
	"hash/maphash"
	"math"
	"sort"
	"time"
)

// slot is one entry of the index: 24 bytes, no pointers, so a million
// slots are one allocation the garbage collector does not scan.
type slot struct {
	off     uint32 // the key "tenant\x00address" in the arena
	tag     uint32 // the high half of the key's hash, checked before the key
	klen    uint16
	source  uint8
	live    bool
	reason  uint32 // index into index.reasons
	added   uint32 // Unix seconds (until 2106)
	expires uint32 // Unix seconds; 0: never
}

// index is the in-memory form of the list: an open-addressed hash table
// (linear probing) of slot numbers, the slots, and the keys in one byte
// arena. A key is never removed from the table: Remove marks its slot
// dead and compaction builds a new index. It is not safe for concurrent
// use: Store holds its lock around every call.
type index struct {
	seed      maphash.Seed
	table     []uint32 // slot number + 1; 0: empty. len is a power of two
	slots     []slot
	arena     []byte
	reasons   []string
	reasonIdx map[string]uint32
	live      int
}

// maxLoad is the table's fill (in eighths) past which it doubles: 6/8
// keeps probe runs short at 4 bytes a table entry.
const maxLoad = 6

func newIndex() *index { return newIndexSized(0, 0) }

// newIndexSized makes an index with room for n keys of arena bytes in all.
func newIndexSized(n, arena int) *index {
	size := 16
	for size*maxLoad/8 < n {
		size *= 2
	}
	return &index{seed: maphash.MakeSeed(), table: make([]uint32, size), slots: make([]slot, 0, n),
		arena: make([]byte, 0, arena), reasons: []string{""}, reasonIdx: map[string]uint32{"": 0}}
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

// find returns the slot number of tenant and addr, live or dead; when
// absent, the table position where it would go.
func (x *index) find(tenant, addr string) (n uint32, pos int, ok bool) {
	h := x.hash(tenant, addr)
	tag := uint32(h >> 32)
	mask := len(x.table) - 1
	for pos = int(h) & mask; ; pos = (pos + 1) & mask {
		e := x.table[pos]
		if e == 0 {
			return 0, pos, false
		}
		if s := &x.slots[e-1]; s.tag == tag && x.keyIs(s, tenant, addr) {
			return e - 1, pos, true
		}
	}
}

// grow doubles the table and re-inserts every slot.
func (x *index) grow() {
	x.table = make([]uint32, 2*len(x.table))
	mask := len(x.table) - 1
	for i := range x.slots {
		s := &x.slots[i]
		k := x.arena[s.off : s.off+uint32(s.klen)]
		var h maphash.Hash
		h.SetSeed(x.seed)
		h.Write(k)
		pos := int(h.Sum64()) & mask
		for x.table[pos] != 0 {
			pos = (pos + 1) & mask
		}
		x.table[pos] = uint32(i + 1)
	}
}

// lookup returns the live, unexpired entry of tenant and addr.
func (x *index) lookup(tenant, addr string, now time.Time) (*slot, bool) {
	n, _, ok := x.find(tenant, addr)
	if !ok {
		return nil, false
	}
	s := &x.slots[n]
	if !s.live || s.expired(now) {
		return nil, false
	}
	return s, true
}

// expiredCount counts the live entries that have expired.
func (x *index) expiredCount(now time.Time) int {
	n := 0
	for i := range x.slots {
		if s := &x.slots[i]; s.live && s.expired(now) {
			n++
		}
	}
	return n
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
	n, pos, ok := x.find(e.Tenant, e.Address)
	if ok {
		old := &x.slots[n]
		if !old.live {
			x.live++
		}
		s.off, s.klen, s.tag = old.off, old.klen, old.tag
		*old = s
		return nil
	}
	klen := len(e.Tenant) + 1 + len(e.Address)
	if len(x.arena)+klen > math.MaxUint32 || klen > math.MaxUint16 || len(x.slots) >= math.MaxUint32-1 {
		return errIndexFull
	}
	s.off, s.klen, s.tag = uint32(len(x.arena)), uint16(klen), uint32(x.hash(e.Tenant, e.Address)>>32)
	x.arena = append(x.arena, e.Tenant...)
	x.arena = append(x.arena, 0)
	x.arena = append(x.arena, e.Address...)
	x.slots = append(x.slots, s)
	x.table[pos] = uint32(len(x.slots))
	x.live++
	if len(x.slots)*8 > len(x.table)*maxLoad {
		x.grow()
	}
	return nil
}

// remove marks an entry dead; compaction reclaims its slot.
func (x *index) remove(tenant, addr string) bool {
	n, _, ok := x.find(tenant, addr)
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
