package queue

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"time"
)

// The envelope encoding is both the log payload and the in-memory form of
// an envelope, which keeps the index near 300 bytes per message. Fields
// the index reads on every change (id, times) come first so peekEnvelope
// can stop early.
//
//	version u8 (1, 2 or 3)
//	id str | received vi | next vi | from str
//	listener, clientIP, user, tenant, campaign, pool, route, dkim str
//	priority vi | size vi | attempts uv | generation uv
//	versions 2, 3: flags uv (envFlagSMTPUTF8 | envFlagEightBitMIME)
//	version 3 only: envid str | ret u8
//	nrcpt uv, then per recipient: addr str | status u8 | lastReply str
//	version 3 only, per recipient: dsn u8 (Notify bits | rcptDelayNotified) | orcpt str
//
// str = uvarint length + bytes; vi/uv = signed/unsigned varint; times are
// UnixNano, with zeroTime for the zero time.Time.
//
// An envelope without flags is written as version 1, byte for byte what
// the spool wrote before flags existed, so a spool stays readable by the
// previous release for all mail that does not use them; version 1 reads
// as no flags. Unknown flag bits are refused rather than dropped: they
// come from a newer writer whose meaning this one cannot keep. Likewise
// version 3 is written only for an envelope that carries DSN parameters
// (RFC 3461) or DSN state; every other envelope keeps its version 1 or 2
// bytes.
const (
	envVersion      = 1
	envVersionFlags = 2
	envVersionDSN   = 3
)

// rcptDelayNotified is the version-3 recipient bit beside the Notify
// bits: a "delayed" DSN went out for the recipient.
const rcptDelayNotified = 1 << 7

// hasDSN reports whether the envelope needs version 3.
func hasDSN(e *Envelope) bool {
	if e.EnvID != "" || e.Ret != RetUnset {
		return true
	}
	for i := range e.Recipients {
		if r := &e.Recipients[i]; r.Notify != 0 || r.ORCPT != "" || r.DelayNotified {
			return true
		}
	}
	return false
}

// Envelope flags (version 2).
const (
	envFlagSMTPUTF8     = 1 << 0
	envFlagEightBitMIME = 1 << 1
	envFlagsKnown       = envFlagSMTPUTF8 | envFlagEightBitMIME
)

// knownVersion reports an envelope version this code decodes.
func knownVersion(v byte) bool { return v == envVersion || v == envVersionFlags || v == envVersionDSN }

func envFlags(e *Envelope) uint64 {
	var f uint64
	if e.SMTPUTF8 {
		f |= envFlagSMTPUTF8
	}
	if e.EightBitMIME {
		f |= envFlagEightBitMIME
	}
	return f
}

const zeroTime = math.MinInt64

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var errShort = errors.New("truncated encoding")

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func timeNano(t time.Time) int64 {
	if t.IsZero() {
		return zeroTime
	}
	return t.UnixNano()
}

func nanoTime(n int64) time.Time {
	if n == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func encodeEnvelope(b []byte, e *Envelope) []byte {
	flags, dsn := envFlags(e), hasDSN(e)
	switch {
	case dsn:
		b = append(b, envVersionDSN)
	case flags == 0:
		b = append(b, envVersion)
	default:
		b = append(b, envVersionFlags)
	}
	b = appendStr(b, e.ID)
	b = binary.AppendVarint(b, timeNano(e.Received))
	b = binary.AppendVarint(b, timeNano(e.NextAttempt))
	b = appendStr(b, e.From)
	for _, s := range [...]string{e.Listener, e.ClientIP, e.User, e.Tenant, e.Campaign, e.Pool, e.Route, e.DKIM} {
		b = appendStr(b, s)
	}
	b = binary.AppendVarint(b, int64(e.Priority))
	b = binary.AppendVarint(b, e.Size)
	b = binary.AppendUvarint(b, uint64(e.Attempts))
	b = binary.AppendUvarint(b, e.Generation)
	if flags != 0 || dsn {
		b = binary.AppendUvarint(b, flags)
	}
	if dsn {
		b = appendStr(b, e.EnvID)
		b = append(b, byte(e.Ret))
	}
	b = binary.AppendUvarint(b, uint64(len(e.Recipients)))
	for _, r := range e.Recipients {
		b = appendStr(b, r.Addr)
		b = append(b, byte(r.Status))
		b = appendStr(b, r.LastReply)
		if dsn {
			bits := byte(r.Notify)
			if r.DelayNotified {
				bits |= rcptDelayNotified
			}
			b = append(b, bits)
			b = appendStr(b, r.ORCPT)
		}
	}
	return b
}

// reader decodes sequentially and remembers the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) u32() uint32 {
	if len(r.b) < 4 {
		r.fail()
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *reader) str() string { return string(r.bytes()) }

func (r *reader) fail() {
	if r.err == nil {
		r.err = errShort
	}
	r.b = nil
}

func decodeEnvelope(b []byte) (Envelope, error) {
	r := reader{b: b}
	var e Envelope
	v := r.byte()
	if !knownVersion(v) && r.err == nil {
		return e, errors.New("unknown envelope version")
	}
	e.ID = r.str()
	e.Received = nanoTime(r.varint())
	e.NextAttempt = nanoTime(r.varint())
	e.From = r.str()
	for _, p := range [...]*string{&e.Listener, &e.ClientIP, &e.User, &e.Tenant, &e.Campaign, &e.Pool, &e.Route, &e.DKIM} {
		*p = r.str()
	}
	e.Priority = int(r.varint())
	e.Size = r.varint()
	e.Attempts = int(r.uvarint())
	e.Generation = r.uvarint()
	if v == envVersionFlags || v == envVersionDSN {
		flags := r.uvarint()
		if flags&^envFlagsKnown != 0 && r.err == nil {
			return e, errors.New("unknown envelope flags")
		}
		e.SMTPUTF8 = flags&envFlagSMTPUTF8 != 0
		e.EightBitMIME = flags&envFlagEightBitMIME != 0
	}
	if v == envVersionDSN {
		e.EnvID = r.str()
		e.Ret = Ret(r.byte())
		if e.Ret > RetHdrs && r.err == nil {
			return e, errors.New("unknown envelope RET value")
		}
	}
	n := r.uvarint()
	if n > uint64(len(r.b)) { // each recipient takes at least 3 bytes
		r.fail()
	}
	if r.err == nil && n > 0 {
		e.Recipients = make([]Recipient, n)
		for i := range e.Recipients {
			rc := &e.Recipients[i]
			rc.Addr = r.str()
			rc.Status = RcptStatus(r.byte())
			rc.LastReply = r.str()
			if v == envVersionDSN {
				bits := r.byte()
				if Notify(bits)&^(notifyKnown|rcptDelayNotified) != 0 && r.err == nil {
					return e, errors.New("unknown recipient NOTIFY bits")
				}
				rc.Notify = Notify(bits) & notifyKnown
				rc.DelayNotified = bits&rcptDelayNotified != 0
				rc.ORCPT = r.str()
			}
		}
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes after envelope")
	}
	return e, r.err
}

// envHead is what the index needs from an encoded envelope.
type envHead struct {
	id       []byte // aliases the encoding
	received int64
	next     int64
}

func peekEnvelope(b []byte) (envHead, error) {
	r := reader{b: b}
	if v := r.byte(); !knownVersion(v) && r.err == nil {
		return envHead{}, errors.New("unknown envelope version")
	}
	var h envHead
	h.id = r.bytes()
	h.received = r.varint()
	h.next = r.varint()
	return h, r.err
}

// Log records. Each wal entry is
//
//	crc u32 (Castagnoli, little endian, of everything after it)
//	kind u8 | batch uv
//	put:  file uv | offset uv | length uv | bodycrc u32 | envelope (rest)
//	done: outcome u8 | id str | reason str
//
// A put carries the message's whole current state, so replay keeps the
// last put per ID and a done removes it; there are no deltas to reorder.
// batch numbers the group commit that wrote the record (see replay).
const (
	recPut  = 1
	recDone = 2
)

type bodyRef struct {
	file uint32 // body file number
	n    uint32 // body length
	off  int64  // frame offset in the file
	crc  uint32 // frame CRC
}

type record struct {
	kind    byte
	batch   uint64
	ref     bodyRef
	env     []byte // put: encoded envelope (aliases the input)
	id      string // done
	outcome Outcome
	reason  string
}

func appendPut(b []byte, batch uint64, ref bodyRef, env []byte) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, recPut)
	b = binary.AppendUvarint(b, batch)
	b = binary.AppendUvarint(b, uint64(ref.file))
	b = binary.AppendUvarint(b, uint64(ref.off))
	b = binary.AppendUvarint(b, uint64(ref.n))
	b = binary.LittleEndian.AppendUint32(b, ref.crc)
	b = append(b, env...)
	return sealRecord(b, start)
}

func appendDone(b []byte, batch uint64, id string, outcome Outcome, reason string) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, recDone)
	b = binary.AppendUvarint(b, batch)
	b = append(b, byte(outcome))
	b = appendStr(b, id)
	b = appendStr(b, reason)
	return sealRecord(b, start)
}

func sealRecord(b []byte, start int) []byte {
	binary.LittleEndian.PutUint32(b[start:], crc32.Checksum(b[start+4:], castagnoli))
	return b
}

var errBadCRC = errors.New("record checksum mismatch")

// decodeRecord checks the CRC and splits a record; env aliases b.
func decodeRecord(b []byte) (record, error) {
	var rec record
	if len(b) < 5 {
		return rec, errShort
	}
	if binary.LittleEndian.Uint32(b) != crc32.Checksum(b[4:], castagnoli) {
		return rec, errBadCRC
	}
	r := reader{b: b[4:]}
	rec.kind = r.byte()
	rec.batch = r.uvarint()
	switch rec.kind {
	case recPut:
		file := r.uvarint()
		rec.ref.off = int64(r.uvarint())
		n := r.uvarint()
		rec.ref.crc = r.u32()
		if file > math.MaxUint32 || n > math.MaxUint32 {
			r.fail()
		}
		rec.ref.file, rec.ref.n = uint32(file), uint32(n)
		rec.env = r.b
		if r.err == nil {
			_, r.err = peekEnvelope(rec.env)
		}
	case recDone:
		rec.outcome = Outcome(r.byte())
		rec.id = r.str()
		rec.reason = r.str()
	default:
		return rec, errors.New("unknown record kind")
	}
	return rec, r.err
}
