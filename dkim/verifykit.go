package dkim

import (
	"crypto"
	"crypto/sha256"
)

// What a verifier of DKIM-style signatures needs (package inauth's ARC,
// RFC 8617, whose signatures are DKIM's with other field names): the
// header fields as the signer finds them, their canonical forms and the
// body hash, from the code the signer hashes with, so that what cuemta
// signs and what it checks cannot drift apart.

// Field is one header field of a message.
type Field struct {
	Name []byte // as spelt, without whitespace around it
	Raw  []byte // the whole field: name, colon, value and line ends
}

// HeaderFields returns the header fields of msg, top to bottom, and the
// offset of its body (len(msg) when it has none). Lines end at LF; a line
// beginning with SP or HTAB continues the field before it. The fields
// share msg's memory.
func HeaderFields(msg []byte) ([]Field, int) {
	fs, body := parseHeader(msg, nil)
	out := make([]Field, len(fs))
	for i, f := range fs {
		out[i] = Field{Name: msg[f.nameStart:f.nameEnd], Raw: msg[f.start:f.end]}
	}
	return out, body
}

// AppendCanonicalField appends the canonical form of header field f
// (RFC 6376 §3.4.1 simple, §3.4.2 relaxed) to dst, ending in CRLF.
func AppendCanonicalField(dst, f []byte, relaxed bool) []byte {
	if relaxed {
		return appendRelaxedHeader(dst, f)
	}
	return appendSimpleHeader(dst, f)
}

// BodyHash is the SHA-256 of the canonical form of the whole body
// (RFC 6376 §3.7; no l= limit).
func BodyHash(body []byte, relaxed bool) [sha256.Size]byte {
	h := sha256.New()
	c := newBodyCanon(relaxed, h)
	c.Write(body)
	c.Close()
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// Signer is the key's private key, for the ARC sets package inauth seals
// with a configured DKIM key.
func (k *Key) Signer() crypto.Signer { return k.signer }
