package dkim

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/bits"
)

// Canonicalisation (RFC 6376 §3.4) as streaming writers that hash as they
// go: the canonical form is never built. Output that equals the input
// (almost all of a body) is passed to the hash as sub-slices of the input;
// only the bytes canonicalisation changes (a collapsed whitespace run, a
// CRLF for a bare LF, line ends held back until a later line shows they
// were not trailing empty lines) are written from small constants.
//
// Line ends are CRLF, and a bare LF counts as one too (as the verifiers
// that read a message line by line see it); a bare CR is ordinary data.

var (
	crlf      = []byte("\r\n")
	crlfs     = bytes.Repeat(crlf, 32)
	spaceByte = []byte(" ")
	crByte    = []byte("\r")
)

// bodyCanon canonicalises a body written to it in any number of pieces
// and writes the canonical form to a hash.
type bodyCanon interface {
	io.Writer
	// Close writes what the end of the body decides (the final CRLF).
	Close()
}

func newBodyCanon(relaxed bool, w io.Writer) bodyCanon {
	if relaxed {
		return &relaxedBody{w: w}
	}
	return &simpleBody{w: w}
}

// writeCRLFs writes n CRLFs to w.
func writeCRLFs(w io.Writer, n int) {
	for n > 0 {
		k := min(n, len(crlfs)/2)
		w.Write(crlfs[:2*k])
		n -= k
	}
}

// simpleBody is the "simple" body algorithm (RFC 6376 §3.4.3): the body
// as it is, with the empty lines at its end removed and a CRLF added when
// it does not end with one (so an empty body is one CRLF).
type simpleBody struct {
	w       io.Writer
	pending int  // line ends not yet written: trailing empty lines unless data follows
	cr      bool // the last piece ended with a CR that may begin a CRLF
}

func (c *simpleBody) Write(p []byte) (int, error) {
	n := len(p)
	i := 0
	if c.cr {
		c.cr = false
		if len(p) > 0 && p[0] == '\n' {
			c.pending++
			i = 1
		} else {
			c.out(crByte)
		}
	}
	end := len(p)
	if end > i && p[end-1] == '\r' {
		c.cr = true
		end--
	}
	start := i
	for i < end {
		k := bytes.IndexByte(p[i:end], '\n')
		if k < 0 {
			break
		}
		k += i
		if k == 0 || p[k-1] != '\r' {
			// A bare LF: what precedes it is output as is, the LF
			// becomes a CRLF.
			c.out(p[start:k])
			c.pending++
			start = k + 1
		}
		i = k + 1
	}
	c.out(p[start:end])
	return n, nil
}

// out writes seg, whose line ends are all CRLFs, holding back the CRLFs
// it ends with.
func (c *simpleBody) out(seg []byte) {
	e := len(seg)
	for e >= 2 && seg[e-2] == '\r' && seg[e-1] == '\n' {
		e -= 2
	}
	if e > 0 {
		writeCRLFs(c.w, c.pending)
		c.pending = 0
		c.w.Write(seg[:e])
	}
	c.pending += (len(seg) - e) / 2
}

func (c *simpleBody) Close() {
	if c.cr {
		c.cr = false
		c.out(crByte)
	}
	c.w.Write(crlf)
}

// Byte classes of the relaxed body scan.
const (
	clData = iota
	clWSP
	clCR
	clLF
)

var class = func() (t [256]uint8) {
	t[' '], t['\t'], t['\r'], t['\n'] = clWSP, clWSP, clCR, clLF
	return t
}()

// relaxedBody is the "relaxed" body algorithm (RFC 6376 §3.4.4):
// whitespace at the end of lines removed, other runs of SP and HTAB
// reduced to one SP, empty lines at the end removed, and a CRLF added to a
// non-empty body that does not end with one (an empty body stays empty).
type relaxedBody struct {
	w        io.Writer
	pending  int  // line ends not yet written: trailing empty lines unless data follows
	wsp      bool // a whitespace run not yet written: dropped if the line ends
	cr       bool // the last piece ended with a CR that may begin a CRLF
	nonEmpty bool // data has been written
}

// data writes the held-back line ends and whitespace that data following
// them makes part of the body, then b.
func (c *relaxedBody) data(b []byte) {
	if c.pending > 0 {
		writeCRLFs(c.w, c.pending)
		c.pending = 0
	}
	if c.wsp {
		c.w.Write(spaceByte)
		c.wsp = false
	}
	c.w.Write(b)
	c.nonEmpty = true
}

func (c *relaxedBody) lineEnd() {
	c.wsp = false // RFC 6376 §3.4.4 b: whitespace at the end of a line is ignored
	c.pending++
}

func (c *relaxedBody) Write(p []byte) (int, error) {
	n := len(p)
	i := 0
	if c.cr {
		c.cr = false
		if len(p) > 0 && p[0] == '\n' {
			c.lineEnd()
			i = 1
		} else {
			c.data(crByte)
		}
	}
	for i < n {
		switch class[p[i]] {
		case clData:
			// The longest stretch whose canonical form is itself: data,
			// single spaces between data, and CRLFs between data.
			j := i + 1
			for j < n {
				if j+8 <= n {
					// Eight bytes at a time up to the first one that is
					// not above SP (the lowest flagged byte of this
					// borrow trick is always a true one).
					x := binary.LittleEndian.Uint64(p[j:])
					m := (x - 0x2121212121212121) & ^x & 0x8080808080808080
					if m == 0 {
						j += 8
						continue
					}
					j += bits.TrailingZeros64(m) >> 3
				}
				switch class[p[j]] {
				case clData:
					j++
					continue
				case clWSP:
					if p[j] == ' ' && j+1 < n && class[p[j+1]] == clData {
						j += 2
						continue
					}
				case clCR:
					if j+2 < n && p[j+1] == '\n' && class[p[j+2]] == clData {
						j += 3
						continue
					}
				}
				break
			}
			c.data(p[i:j])
			i = j
		case clWSP:
			c.wsp = true
			i++
		case clCR:
			switch {
			case i+1 == n:
				c.cr = true
				i++
			case p[i+1] == '\n':
				c.lineEnd()
				i += 2
			default:
				c.data(p[i : i+1]) // a bare CR is data
				i++
			}
		case clLF:
			c.lineEnd() // a bare LF ends a line
			i++
		}
	}
	return n, nil
}

func (c *relaxedBody) Close() {
	if c.cr {
		c.cr = false
		c.data(crByte)
	}
	if c.nonEmpty {
		c.w.Write(crlf)
	}
}

// isWSP reports whether b is SP or HTAB (RFC 5234 WSP).
func isWSP(b byte) bool { return b == ' ' || b == '\t' }

// lower is ASCII lower case: header field names are ASCII (RFC 5322 §2.2).
func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// appendRelaxedHeader appends the "relaxed" form (RFC 6376 §3.4.2) of the
// header field f (name, colon, value, with its line ends) to dst: the
// name in lower case, the field unfolded, runs of whitespace reduced to
// one SP, whitespace around the colon and at the end removed, then CRLF.
// A line without a colon is all name. Line ends are dropped as
// unfolding; a bare CR is kept as data.
func appendRelaxedHeader(dst, f []byte) []byte {
	colon := bytes.IndexByte(f, ':')
	name, value := f, []byte(nil)
	if colon >= 0 {
		name, value = f[:colon], f[colon+1:]
	}
	name = trimFWS(name)
	for _, b := range name {
		dst = append(dst, lower(b))
	}
	dst = append(dst, ':')
	wsp, started := false, false
	for i := 0; i < len(value); i++ {
		b := value[i]
		switch {
		case isWSP(b):
			wsp = true
		case b == '\n' || b == '\r' && i+1 < len(value) && value[i+1] == '\n':
			// A line end: unfolding removes it; the folding whitespace
			// that follows it is a run like any other.
			if b == '\r' {
				i++
			}
			wsp = true
		default:
			if wsp && started {
				dst = append(dst, ' ')
			}
			wsp, started = false, true
			dst = append(dst, b)
		}
	}
	return append(dst, '\r', '\n')
}

// trimFWS removes SP, HTAB and line ends (CRLF or LF) from both ends of b.
func trimFWS(b []byte) []byte { return trimFWSRight(trimFWSLeft(b)) }

// trimFWSLeft removes SP, HTAB and line ends from the start of b.
func trimFWSLeft(b []byte) []byte {
	for len(b) > 0 {
		switch {
		case isWSP(b[0]) || b[0] == '\n':
			b = b[1:]
		case b[0] == '\r' && len(b) > 1 && b[1] == '\n':
			b = b[2:]
		default:
			return b
		}
	}
	return b
}

// trimFWSRight removes SP, HTAB and line ends from the end of b.
func trimFWSRight(b []byte) []byte {
	for l := len(b); l > 0; l = len(b) {
		switch {
		case isWSP(b[l-1]):
			b = b[:l-1]
		case b[l-1] == '\n':
			b = b[:l-1]
			if l > 1 && b[l-2] == '\r' {
				b = b[:l-2]
			}
		default:
			return b
		}
	}
	return b
}

// appendSimpleHeader appends the "simple" form (RFC 6376 §3.4.1) of the
// header field f: the field unchanged, each line ending in CRLF (a bare LF
// becomes CRLF, a last line without one gets one).
func appendSimpleHeader(dst, f []byte) []byte {
	for len(f) > 0 {
		k := bytes.IndexByte(f, '\n')
		if k < 0 {
			return append(append(dst, f...), '\r', '\n')
		}
		line := f[:k]
		if k > 0 && line[k-1] == '\r' {
			line = line[:k-1]
		}
		dst = append(append(dst, line...), '\r', '\n')
		f = f[k+1:]
	}
	return dst
}

// simpleIsVerbatim reports whether the simple form of f is f itself:
// every line ends in CRLF.
func simpleIsVerbatim(f []byte) bool {
	if len(f) < 2 || f[len(f)-1] != '\n' || f[len(f)-2] != '\r' {
		return false
	}
	for i := bytes.IndexByte(f, '\n'); i >= 0; {
		if i == 0 || f[i-1] != '\r' {
			return false
		}
		j := bytes.IndexByte(f[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return true
}
