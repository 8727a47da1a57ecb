package dkim

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The signer (RFC 6376 §5) works on the message as one byte slice, in one
// pass over the body:
//
//   - the header section is scanned once for its fields (offsets into the
//     message, folded lines joined, bare LF taken as a line end);
//   - the body is read once, in chunks, each chunk fed to the body
//     canonicalisations the keys use (at most two), which hash it as they
//     go: one body hash per canonicalisation, shared by every key that
//     uses it, and no copy of the body (l= is never used);
//   - per key, the selected header fields are canonicalised into one
//     reused buffer (or hashed in place) and hashed with the
//     DKIM-Signature field being made, then signed (rsa-sha256 with
//     PKCS #1 v1.5, ed25519-sha256 per RFC 8463).
//
// The output is the signature fields followed by the message: the one copy
// Sign's contract (a new slice) requires.

// now is the clock of the t= tag.
var now = time.Now

// bodyChunk is how much of the body each canonicalisation is fed at a
// time: small enough that the second one reads it from cache.
const bodyChunk = 16 << 10

// foldAt is the column at which the DKIM-Signature field is folded
// (RFC 5322 §2.1.1: lines SHOULD NOT exceed 78 characters).
const foldAt = 78

// field is one header field of the message being signed: msg[start:end]
// with its line ends; msg[nameStart:nameEnd] is its name, without the
// whitespace around it.
type field struct{ start, end, nameStart, nameEnd int }

// state is the scratch of one Sign call, pooled so signing allocates
// little beyond the output and what the key operation needs.
type state struct {
	fields   []field
	buf      []byte               // one canonical header field at a time, then a signature's base64
	sigs     []byte               // the DKIM-Signature fields made so far
	bodyHash [2]hash.Hash         // by canonicalisation: [0] simple, [1] relaxed
	bh       [2][sha256.Size]byte // the body hashes, indexed alike
	hdrHash  hash.Hash
	simple   simpleBody
	relaxed  relaxedBody
}

var statePool = sync.Pool{New: func() any {
	return &state{bodyHash: [2]hash.Hash{sha256.New(), sha256.New()}, hdrHash: sha256.New()}
}}

// signPlan is what signing with a key needs, derived once from its
// fields by prepare.
type signPlan struct {
	relaxedHeader, relaxedBody bool
	// occurrence[i] is how many times HeaderKeys[i] is listed before i.
	occurrence []int
	// head and names are the pieces of the DKIM-Signature field that do
	// not change from message to message: before t= (v, a, c, d, s) and
	// after it (h).
	head, names []piece
}

// piece is a part of a folded field value; glued pieces follow the one
// before without a space.
type piece struct {
	text  string
	glued bool
}

// prepare checks a key's signing parameters and derives its signPlan; Load
// calls it once per key, and Sign refuses a key without one.
func (k *Key) prepare() error {
	p := &signPlan{}
	canon := func(c string) (relaxed bool, _ error) {
		switch c {
		case "relaxed":
			return true, nil
		case "simple", "": // RFC 6376 §3.5 c=: simple is the default
			return false, nil
		}
		return false, fmt.Errorf("unknown canonicalization %q (want relaxed or simple)", c)
	}
	var err error
	if p.relaxedHeader, err = canon(k.HeaderCanon); err != nil {
		return err
	}
	if p.relaxedBody, err = canon(k.BodyCanon); err != nil {
		return err
	}
	switch k.signer.(type) {
	case *rsa.PrivateKey:
		k.Algorithm = "rsa-sha256"
	case ed25519.PrivateKey:
		k.Algorithm = "ed25519-sha256" // RFC 8463 §3
	default:
		return fmt.Errorf("unsupported key type %T (want RSA or Ed25519)", k.signer)
	}
	if k.Domain == "" || k.Selector == "" || strings.ContainsAny(k.Domain+k.Selector, "; \t\r\n") {
		return fmt.Errorf("domain %q and selector %q must be non-empty DNS labels", k.Domain, k.Selector)
	}
	from := false
	p.occurrence = make([]int, len(k.HeaderKeys))
	for i, h := range k.HeaderKeys {
		if h == "" || strings.ContainsAny(h, ": \t\r\n;") {
			return fmt.Errorf("%q is not a header field name", h)
		}
		from = from || strings.EqualFold(h, "From")
		for _, prev := range k.HeaderKeys[:i] {
			if strings.EqualFold(prev, h) {
				p.occurrence[i]++
			}
		}
		switch {
		case i == 0:
			p.names = append(p.names, piece{text: "h=" + h})
		default:
			p.names = append(p.names, piece{text: ":" + h, glued: true})
		}
	}
	if !from {
		return errors.New("the From field must be signed (RFC 6376 §5.4)")
	}
	p.names[len(p.names)-1].text += ";"
	name := func(relaxed bool) string {
		if relaxed {
			return "relaxed"
		}
		return "simple"
	}
	p.head = []piece{
		{text: "v=1;"},
		{text: "a=" + k.Algorithm + ";"},
		{text: "c=" + name(p.relaxedHeader) + "/" + name(p.relaxedBody) + ";"},
		{text: "d=" + k.Domain + ";"},
		{text: "s=" + k.Selector + ";"},
	}
	k.plan = p
	return nil
}

// Sign returns msg with one DKIM-Signature field per key prepended, in
// the order of keys (the first key's signature ends up on top). Every
// signature covers the message as given, not the other signatures.
//
// The header section ends at the first empty line; a message without one
// is all header with an empty body (RFC 5322 §3.5: the body is optional),
// as a verifier sees it once a header/body separator is added. A bare LF
// ends a line as CRLF does; a bare CR is data. A message whose first line
// begins with whitespace is refused: that line would continue the
// signature field.
func Sign(msg []byte, keys []*Key) ([]byte, error) {
	for _, k := range keys {
		if k == nil || k.plan == nil {
			return nil, errors.New("dkim: key not loaded with Load")
		}
	}
	if len(msg) > 0 && isWSP(msg[0]) {
		// RFC 5322 §2.2.3: a line beginning with whitespace continues the
		// field above it, so it would become part of ours.
		return nil, errors.New("dkim: the message begins with a folded (whitespace-led) line")
	}
	s := statePool.Get().(*state)
	defer statePool.Put(s)
	var bodyStart int
	s.fields, bodyStart = parseHeader(msg, s.fields[:0])
	s.hashBody(msg[bodyStart:], keys)
	s.sigs = s.sigs[:0]
	t := now().Unix()
	for _, k := range keys {
		if err := s.sign(msg, k, t); err != nil {
			return nil, fmt.Errorf("dkim %s: %w", k.Name, err)
		}
	}
	out := make([]byte, len(s.sigs)+len(msg))
	copy(out[copy(out, s.sigs):], msg)
	if cap(s.buf) > 64<<10 || cap(s.sigs) > 64<<10 || cap(s.fields) > 4096 {
		s.buf, s.sigs, s.fields = nil, nil, nil // do not keep the scratch of an odd message
	}
	return out, nil
}

// parseHeader appends the header fields of msg to fields and returns them
// with the offset of the body: just after the first empty line, or
// len(msg) if there is none. Lines end at LF (CRLF or bare LF); a line
// that begins with SP or HTAB continues the field before it (RFC 5322
// §2.2.3), or is a field of its own if it is the first line.
func parseHeader(msg []byte, fields []field) ([]field, int) {
	i := 0
	for i < len(msg) {
		next := len(msg)
		if k := bytes.IndexByte(msg[i:], '\n'); k >= 0 {
			next = i + k + 1
		}
		switch {
		case msg[i] == '\n' || msg[i] == '\r' && next == i+2:
			return nameFields(msg, fields), next // the empty line ending the header section
		case isWSP(msg[i]) && len(fields) > 0:
			fields[len(fields)-1].end = next
		default:
			fields = append(fields, field{start: i, end: next})
		}
		i = next
	}
	return nameFields(msg, fields), len(msg)
}

// nameFields finds the name of each field: what precedes the first colon,
// or the whole field if it has none, without whitespace at either end.
func nameFields(msg []byte, fields []field) []field {
	for i := range fields {
		f := &fields[i]
		name := msg[f.start:f.end]
		if c := bytes.IndexByte(name, ':'); c >= 0 {
			name = name[:c]
		}
		left := trimFWSLeft(name)
		f.nameStart = f.start + len(name) - len(left)
		f.nameEnd = f.nameStart + len(trimFWSRight(left))
	}
	return fields
}

// hashBody hashes body once per body canonicalisation among keys, in one
// pass over body.
func (s *state) hashBody(body []byte, keys []*Key) {
	var use [2]bool // by relaxedBody
	for _, k := range keys {
		use[b2i(k.plan.relaxedBody)] = true
	}
	s.bodyHash[0].Reset()
	s.bodyHash[1].Reset()
	s.simple = simpleBody{w: s.bodyHash[0]}
	s.relaxed = relaxedBody{w: s.bodyHash[1]}
	for off := 0; off < len(body); off += bodyChunk {
		chunk := body[off:min(off+bodyChunk, len(body))]
		if use[0] {
			s.simple.Write(chunk)
		}
		if use[1] {
			s.relaxed.Write(chunk)
		}
	}
	if use[0] {
		s.simple.Close()
		s.bodyHash[0].Sum(s.bh[0][:0])
	}
	if use[1] {
		s.relaxed.Close()
		s.bodyHash[1].Sum(s.bh[1][:0])
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sign appends k's DKIM-Signature field for msg to s.sigs.
func (s *state) sign(msg []byte, k *Key, t int64) error {
	p := k.plan
	h := s.hdrHash
	h.Reset()
	// RFC 6376 §5.4.2: for a name listed n times, the n instances from
	// the bottom of the header are signed, in that order; a name listed
	// more often than it occurs contributes nothing the extra times.
	for i, name := range k.HeaderKeys {
		skip := p.occurrence[i]
		for j := len(s.fields) - 1; j >= 0; j-- {
			f := s.fields[j]
			if !asciiEqualFold(msg[f.nameStart:f.nameEnd], name) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			s.hashField(h, msg[f.start:f.end], p.relaxedHeader)
			break
		}
	}

	// The DKIM-Signature field up to an empty b= value is hashed last,
	// without its final CRLF (RFC 6376 §3.7).
	start := len(s.sigs)
	fw := folder{buf: append(s.sigs, "DKIM-Signature:"...), col: len("DKIM-Signature:")}
	for _, pc := range p.head {
		fw.piece(pc.glued, "", pc.text, "")
	}
	var tb [20]byte
	fw.pieceBytes("t=", strconv.AppendInt(tb[:0], t, 10), ";")
	for _, pc := range p.names {
		fw.piece(pc.glued, "", pc.text, "")
	}
	var bh [44]byte
	base64.StdEncoding.Encode(bh[:], s.bh[b2i(p.relaxedBody)][:])
	fw.pieceBytes("bh=", bh[:], ";")
	fw.piece(false, "", "b=", "")
	sigField := fw.buf[start:]
	if p.relaxedHeader {
		s.buf = appendRelaxedHeader(s.buf[:0], sigField)
		h.Write(s.buf[:len(s.buf)-2])
	} else {
		h.Write(sigField)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])

	var sig []byte
	var err error
	switch key := k.signer.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(nil, key, crypto.SHA256, sum[:])
	case ed25519.PrivateKey:
		sig = ed25519.Sign(key, sum[:]) // RFC 8463 §3: Ed25519 over the SHA-256 hash
	}
	if err != nil {
		return err
	}
	n := base64.StdEncoding.EncodedLen(len(sig))
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	s.buf = s.buf[:n]
	base64.StdEncoding.Encode(s.buf, sig)
	fw.base64(s.buf)
	s.sigs = append(fw.buf, '\r', '\n')
	return nil
}

// hashField writes the canonical form of header field f to h.
func (s *state) hashField(h hash.Hash, f []byte, relaxed bool) {
	switch {
	case relaxed:
		s.buf = appendRelaxedHeader(s.buf[:0], f)
		h.Write(s.buf)
	case simpleIsVerbatim(f):
		h.Write(f)
	default:
		s.buf = appendSimpleHeader(s.buf[:0], f)
		h.Write(s.buf)
	}
}

// asciiEqualFold reports whether b and s are equal ignoring ASCII case.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// folder appends a header field's value in pieces, folding (CRLF SP)
// before a piece that would pass column foldAt.
type folder struct {
	buf []byte
	col int
}

// piece appends pre+mid+post, after a space unless glued, folding
// first if it would pass column foldAt.
func (f *folder) piece(glued bool, pre, mid, post string) {
	n := len(pre) + len(mid) + len(post)
	if !glued {
		n++
	}
	if f.col+n > foldAt {
		f.buf = append(f.buf, "\r\n"...)
		f.col = 0
		if glued { // FWS may surround the colons of h= (RFC 6376 §3.5)
			f.buf = append(f.buf, ' ')
			f.col = 1
		}
	}
	if !glued {
		f.buf = append(f.buf, ' ')
	}
	f.buf = append(append(append(f.buf, pre...), mid...), post...)
	f.col += n
}

// pieceBytes is piece for a value held in bytes.
func (f *folder) pieceBytes(pre string, mid []byte, post string) {
	n := 1 + len(pre) + len(mid) + len(post)
	if f.col+n > foldAt {
		f.buf = append(f.buf, "\r\n"...)
		f.col = 0
	}
	f.buf = append(append(append(append(f.buf, ' '), pre...), mid...), post...)
	f.col += n
}

// base64 appends b, folded where the line is full (FWS is allowed
// anywhere in a base64 value, RFC 6376 §2.4).
func (f *folder) base64(b []byte) {
	for len(b) > 0 {
		room := foldAt - f.col
		if room <= 0 {
			f.buf = append(f.buf, "\r\n "...)
			f.col = 1
			continue
		}
		n := min(room, len(b))
		f.buf = append(f.buf, b[:n]...)
		f.col += n
		b = b[n:]
	}
}
