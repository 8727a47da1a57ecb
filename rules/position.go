package rules

import (
	"os"
	"strings"
	"unicode/utf8"

	"github.com/cuemta/cuemta/config"
)

// sourceCache reads each CUE file once per Compile, to map positions inside
// `when` strings back to the file.
type sourceCache map[string][]string // file -> lines (without "\n")

func (c sourceCache) lines(file string) []string {
	if l, ok := c[file]; ok {
		return l
	}
	b, err := os.ReadFile(file)
	var l []string
	if err == nil {
		l = strings.Split(string(b), "\n")
	}
	c[file] = l // nil on error: remember the failure too
	return l
}

// positionOf maps a CEL location (1-based line, 0-based column counted in
// code points, as cel-go reports it) inside the `when` expression src to a
// position in the CUE file.
//
// whenPos is the position of the literal's opening quote (or of the first
// '#' of a raw string), or of the `when:` label before it. When the file is readable and the literal there
// decodes to src, the position is exact, escapes, raw strings (#"..."#) and
// multi-line strings ("""...""", whose content starts on the next line and
// loses the closing delimiter's indentation) included. Otherwise (no file,
// as for an embedded config, or a literal built by interpolation) it is
// computed as for a single-line literal without escapes starting at
// whenPos: line 1 at whenPos.Col+1+col, later lines at column col+1 of
// whenPos.Line+line-1. The line is then right for single-line strings;
// for multi-line ones it is off by one, and columns are off by the label's
// width when whenPos is the label.
func positionOf(c sourceCache, whenPos config.Pos, src string, line, col int) config.Pos {
	if !whenPos.IsValid() {
		return whenPos
	}
	target := runeOffset(src, line, col)
	if pos, ok := exactPosition(c.lines(whenPos.File), whenPos, src, target); ok {
		return pos
	}
	p := whenPos
	if line <= 1 {
		p.Col = whenPos.Col + 1 + col
	} else {
		p.Line = whenPos.Line + line - 1
		p.Col = col + 1
	}
	return p
}

// runeOffset converts a CEL (line, column) to a code-point offset in src.
func runeOffset(src string, line, col int) int {
	off := 0
	for l := 1; l < line; l++ {
		i := strings.IndexByte(src, '\n')
		if i < 0 {
			break
		}
		off += utf8.RuneCountInString(src[:i+1])
		src = src[i+1:]
	}
	return off + col
}

// exactPosition decodes the CUE string literal at whenPos and returns the
// file position of the code point at offset target of its value, if the
// literal's value is src.
func exactPosition(lines []string, whenPos config.Pos, src string, target int) (config.Pos, bool) {
	if whenPos.Line < 1 || whenPos.Line > len(lines) {
		return config.Pos{}, false
	}
	first := lines[whenPos.Line-1]
	start := whenPos.Col - 1 // byte offset of the literal in its line
	if start < 0 || start >= len(first) {
		return config.Pos{}, false
	}
	rest := first[start:]
	if skip := labelPrefix(rest); skip > 0 {
		// The position is the field's (`when: "..."`), not the literal's.
		start += skip
		rest = rest[skip:]
	}
	hashes := len(rest) - len(strings.TrimLeft(rest, "#"))
	rest = rest[hashes:]
	closing := strings.Repeat("#", hashes)
	escape := `\` + closing

	var value []rune
	var where []config.Pos
	at := func(line, col int) config.Pos { return config.Pos{File: whenPos.File, Line: line, Col: col} }

	// decode appends the code points of s (a piece of one file line starting
	// at byte column col0) up to the closing delimiter; it reports whether
	// the delimiter was found and where.
	decode := func(s string, lineNo, col0 int, delim string) (closed bool, closeCol int) {
		for i := 0; i < len(s); {
			if strings.HasPrefix(s[i:], delim) {
				return true, col0 + i
			}
			if strings.HasPrefix(s[i:], escape) {
				j := i + len(escape)
				if j >= len(s) {
					return false, 0
				}
				r, n := decodeEscape(s[j:])
				value = append(value, r)
				where = append(where, at(lineNo, col0+i+1))
				i = j + n
				continue
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			value = append(value, r)
			where = append(where, at(lineNo, col0+i+1))
			i += n
		}
		return false, 0
	}

	var end config.Pos
	switch {
	case strings.HasPrefix(rest, `"""`):
		// Multi-line: content is the lines between the opening and the
		// closing delimiter, each without the closing line's indentation.
		delim := `"""` + closing
		endLine := -1
		for l := whenPos.Line; l < len(lines); l++ {
			if strings.HasPrefix(strings.TrimLeft(lines[l], " \t"), delim) {
				endLine = l
				break
			}
		}
		if endLine < 0 {
			return config.Pos{}, false
		}
		indent := len(lines[endLine]) - len(strings.TrimLeft(lines[endLine], " \t"))
		for l := whenPos.Line; l < endLine; l++ {
			text := lines[l]
			if len(text) >= indent {
				text = text[indent:]
			} else {
				text = ""
			}
			if l > whenPos.Line {
				value = append(value, '\n')
				where = append(where, at(l, len(lines[l-1])+1))
			}
			decode(text, l+1, indent, "\x00")
		}
		end = at(endLine+1, indent+1)
	case strings.HasPrefix(rest, `"`):
		delim := `"` + closing
		body := rest[1:]
		col0 := start + hashes + 1
		closed, closeCol := decode(body, whenPos.Line, col0, delim)
		if !closed {
			return config.Pos{}, false
		}
		end = at(whenPos.Line, closeCol+1)
	default:
		return config.Pos{}, false
	}
	if string(value) != src {
		return config.Pos{}, false
	}
	if target >= 0 && target < len(where) {
		return where[target], true
	}
	return end, true
}

// labelPrefix returns the length of a leading `label:` and the spaces
// after it, or 0 if s does not start with a field label.
func labelPrefix(s string) int {
	i := 0
	for i < len(s) && (s[i] == '_' || s[i] == '$' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || i > 0 && s[i] >= '0' && s[i] <= '9') {
		i++
	}
	if i == 0 {
		return 0
	}
	if i < len(s) && (s[i] == '?' || s[i] == '!') {
		i++
	}
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	if i >= len(s) || s[i] != ':' {
		return 0
	}
	i++
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// decodeEscape decodes the escape after a backslash (and its hashes) and
// returns the code point and the number of bytes consumed.
func decodeEscape(s string) (rune, int) {
	hex := func(n int) (rune, int) {
		if len(s) < 1+n {
			return utf8.RuneError, len(s)
		}
		var r rune
		for _, c := range s[1 : 1+n] {
			switch {
			case c >= '0' && c <= '9':
				r = r*16 + c - '0'
			case c >= 'a' && c <= 'f':
				r = r*16 + c - 'a' + 10
			case c >= 'A' && c <= 'F':
				r = r*16 + c - 'A' + 10
			default:
				return utf8.RuneError, 1
			}
		}
		return r, 1 + n
	}
	switch s[0] {
	case 'n':
		return '\n', 1
	case 't':
		return '\t', 1
	case 'r':
		return '\r', 1
	case 'a':
		return '\a', 1
	case 'b':
		return '\b', 1
	case 'f':
		return '\f', 1
	case 'v':
		return '\v', 1
	case 'u':
		return hex(4)
	case 'U':
		return hex(8)
	case 'x':
		return hex(2)
	}
	r, n := utf8.DecodeRuneInString(s) // \" \\ \/ and the like stand for themselves
	return r, n
}
