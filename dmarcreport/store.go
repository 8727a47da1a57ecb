package dmarcreport

import (
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cuemta/cuemta/internal/reportbook"
)

// The store counts results per policy domain in daily windows; their
// life (open, closed at the UTC day's end or by Cut, kept until sent),
// the caps on open and closed windows and the state file are
// internal/reportbook's. RFC 7489 §7.2 leaves the interval to the
// record's ri= (default a day) and asks receivers to cover UTC days at
// least; one day is what every receiver sends.
//
// What the store adds to the book's bounds: at most MaxRecords rows per
// window (a result that would make one more is dropped and counted), at
// most maxDKIMPerRow signatures per row, strings clipped to maxFieldLen.

// Defaults of zero StoreOptions limits.
const (
	DefaultMaxDomains = 10000
	DefaultMaxRecords = 1000
	DefaultMaxRows    = 100000
)

const (
	// maxDKIMPerRow bounds the signatures kept per row: a message with
	// more is rare and would make rows as large as the sender likes.
	maxDKIMPerRow = 10
	// maxFieldLen clips names and results: a domain name has at most 253
	// characters, so only garbage is cut.
	maxFieldLen = 255
	// maxRuaKept and maxRuaLen bound a window's copy of the record's rua;
	// at most MaxRua of them are used.
	maxRuaKept = 16
	maxRuaLen  = 512
)

// StoreOptions configure a Store.
type StoreOptions struct {
	// Path is the state file; "" keeps the counts in memory only.
	Path string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxDomains bounds the open windows (policy domains) at once; 0
	// means DefaultMaxDomains.
	MaxDomains int
	// MaxRecords bounds the distinct rows per window; 0 means
	// DefaultMaxRecords. Beyond it a result is dropped and counted.
	MaxRecords int
	// MaxRows bounds the rows of every window together, open and
	// unsent; 0 means DefaultMaxRows. A result that would make one more
	// is dropped and counted.
	MaxRows int
	Logger  *slog.Logger
}

// Store is the Recorder that counts results in daily windows (the
// windows' life and file are internal/reportbook's). It is safe for
// concurrent use.
type Store struct {
	*reportbook.Book[*Window]
	opts StoreOptions
	// rows is the rows the windows hold, guarded by the book's lock
	// (Record's add and Total's use run under it): counted up as rows
	// are made, and recounted by Recount, so that windows the book
	// drops give their rows back.
	rows int
}

var _ Recorder = (*Store)(nil)

// storeVersion is the state file's format.
const storeVersion = 1

// Window is one policy domain's rows over a time range.
type Window struct {
	reportbook.Head
	// Policy is the record as last seen in the window: a record changed
	// during the day is reported, and its rua used, as it is now.
	Policy Policy `json:"policy"`
	Rows   []*Row `json:"rows"`
	// DroppedResults counts this window's results not counted because it
	// had MaxRecords rows already.
	DroppedResults int64 `json:"droppedResults,omitempty"`

	// index finds a row by its key; built on first use, so a loaded or
	// copied window needs no fix-up.
	index map[string]*Row
}

// Row is one group of identical results (RFC 7489 Appendix C: a record)
// and how many there were.
type Row struct {
	SourceIP    string `json:"sourceIP"`
	Disposition string `json:"disposition"`
	SampledOut  bool   `json:"sampledOut,omitempty"`
	// DKIM and SPF are policy_evaluated: aligned pass or fail.
	DKIM         bool       `json:"dkim"`
	SPF          bool       `json:"spf"`
	HeaderFrom   string     `json:"headerFrom"`
	EnvelopeFrom string     `json:"envelopeFrom,omitempty"`
	DKIMAuth     []DKIMAuth `json:"dkimAuth,omitempty"`
	SPFAuth      SPFAuth    `json:"spfAuth"`
	Count        int64      `json:"count"`
}

// OpenStore loads the state at opts.Path, if any.
func OpenStore(opts StoreOptions) (*Store, error) {
	if opts.MaxDomains <= 0 {
		opts.MaxDomains = DefaultMaxDomains
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = DefaultMaxRecords
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = DefaultMaxRows
	}
	b, err := reportbook.Open(reportbook.Options[*Window]{Name: "dmarcreport", Path: opts.Path, Version: storeVersion,
		Now: opts.Now, MaxDomains: opts.MaxDomains, Logger: opts.Logger,
		// JSON allows null rows; a hand-edited file may have them.
		Fix: func(w *Window) bool {
			w.Rows = slices.DeleteFunc(w.Rows, func(r *Row) bool { return r == nil })
			return true
		}})
	if err != nil {
		return nil, err
	}
	s := &Store{Book: b, opts: opts}
	s.Recount()
	return s, nil
}

// Recount totals the rows the windows hold (the reporter calls it every
// cycle): windows sent, given up or dropped by the book's caps no longer
// count against MaxRows.
func (s *Store) Recount() {
	s.Total(func(w *Window) int { return len(w.Rows) }, func(n int) { s.rows = n })
}

// Record counts one result in its policy domain's open window. A result
// without a valid policy domain or source address cannot be reported and
// is dropped (and counted).
func (s *Store) Record(r Result) {
	domain := normName(r.Published.Domain)
	ok := validDomain(domain) && r.SourceIP.IsValid()
	var row *Row
	var key string
	var pol Policy
	if ok {
		// Normalised outside the lock: reception calls this inline.
		row = newRow(r)
		key = row.key()
		pol = normPolicy(r.Published, domain)
	}
	if !ok {
		s.Drop()
		return
	}
	s.Book.Record(domain, func(h reportbook.Head) *Window { return &Window{Head: h} }, func(w *Window, st *reportbook.State[*Window]) {
		w.Policy = pol
		if x := w.row(key); x != nil {
			x.Count++
			return
		}
		if len(w.Rows) >= s.opts.MaxRecords || s.rows >= s.opts.MaxRows {
			w.DroppedResults++
			st.DroppedResults++
			return
		}
		s.rows++
		row.Count = 1
		w.Rows = append(w.Rows, row)
		w.index[key] = row
	})
}

// row finds the row of key, building the index on first use.
func (w *Window) row(key string) *Row {
	if w.index == nil {
		w.index = make(map[string]*Row, len(w.Rows))
		for _, r := range w.Rows {
			w.index[r.key()] = r
		}
	}
	return w.index[key]
}

// newRow is r as a row of count 0, normalised so that results that RFC
// 7489 would report alike group alike: names in lower case without a
// trailing dot, IPv4-mapped addresses as IPv4, signatures in a fixed
// order.
func newRow(r Result) *Row {
	row := &Row{
		SourceIP:     r.SourceIP.Unmap().WithZone("").String(),
		Disposition:  normWord(r.Disposition, "none"),
		SampledOut:   r.SampledOut,
		DKIM:         r.DKIMAligned,
		SPF:          r.SPFAligned,
		HeaderFrom:   normName(r.HeaderFrom),
		EnvelopeFrom: normName(r.EnvelopeFrom),
		SPFAuth:      SPFAuth{Domain: normName(r.SPF.Domain), Scope: normWord(r.SPF.Scope, ""), Result: normWord(r.SPF.Result, "none")},
	}
	for _, d := range r.DKIM[:min(len(r.DKIM), maxDKIMPerRow)] {
		row.DKIMAuth = append(row.DKIMAuth, DKIMAuth{Domain: normName(d.Domain), Selector: normName(d.Selector), Result: normWord(d.Result, "none")})
	}
	slices.SortFunc(row.DKIMAuth, func(a, b DKIMAuth) int {
		return strings.Compare(a.Domain+"\x00"+a.Selector+"\x00"+a.Result, b.Domain+"\x00"+b.Selector+"\x00"+b.Result)
	})
	return row
}

// key identifies the row's group: every field but the count.
func (r *Row) key() string {
	var b strings.Builder
	for _, f := range []string{r.SourceIP, r.Disposition, strconv.FormatBool(r.SampledOut), strconv.FormatBool(r.DKIM), strconv.FormatBool(r.SPF),
		r.HeaderFrom, r.EnvelopeFrom, r.SPFAuth.Domain, r.SPFAuth.Scope, r.SPFAuth.Result} {
		b.WriteString(f)
		b.WriteByte(0)
	}
	for _, d := range r.DKIMAuth {
		b.WriteString(d.Domain + "\x01" + d.Selector + "\x01" + d.Result + "\x00")
	}
	return b.String()
}

// normPolicy is p as a window keeps it: words in lower case, pct within
// 0..100, rua trimmed and bounded.
func normPolicy(p Policy, domain string) Policy {
	out := Policy{Domain: domain, ADKIM: normWord(p.ADKIM, "r"), ASPF: normWord(p.ASPF, "r"), P: normWord(p.P, "none"),
		SP: normWord(p.SP, ""), Pct: min(max(p.Pct, 0), 100)}
	for _, u := range p.Rua {
		u = strings.TrimSpace(u)
		if u == "" || len(u) > maxRuaLen || !utf8.ValidString(u) {
			continue
		}
		if len(out.Rua) == maxRuaKept {
			break
		}
		out.Rua = append(out.Rua, u)
	}
	return out
}

// normName is a domain name (or selector) in lower case without a
// trailing dot, clipped.
func normName(s string) string {
	return clip(strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), ".")))
}

// normWord is a keyword in lower case, or def when empty.
func normWord(s, def string) string {
	s = clip(strings.ToLower(strings.TrimSpace(s)))
	if s == "" {
		return def
	}
	return s
}

// clip cuts s to maxFieldLen bytes, at a character boundary.
func clip(s string) string {
	if len(s) <= maxFieldLen {
		return s
	}
	n := maxFieldLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// validDomain: s is a domain name in ASCII (letters, digits, hyphens,
// underscores), as DMARC looks records up. Anything else would make the
// report's Subject, file name and DNS names unsafe.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Open returns a copy of the open window of domain, or nil.
func (s *Store) Open(domain string) *Window {
	w, _ := s.OpenWindow(normName(domain))
	return w
}
