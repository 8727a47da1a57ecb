package dmarcreport

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cuemta/cuemta/internal/atomicfile"
)

// The store counts results per policy domain in windows. A window is open
// while results are added to it and closed (given an end) when the UTC
// day it belongs to ends, or earlier when a report is forced (Cut); a
// closed window waits in the store until its report is sent or it is too
// old to be worth sending. RFC 7489 §7.2 leaves the interval to the
// record's ri= (default a day) and asks receivers to cover UTC days at
// least; one day is what every receiver sends.
//
// Memory is bounded: at most MaxDomains open windows (a result for one
// more domain is dropped and counted), at most MaxRecords rows per window
// (a result that would make one more is dropped and counted), at most
// maxDKIMPerRow signatures per row, strings clipped to maxFieldLen, and
// at most 3×MaxDomains closed windows (the oldest go first, counted).
//
// Durability: the whole state is written to Path (replaced atomically,
// internal/atomicfile) by Flush, which the reporter calls at every cycle
// and at shutdown. A crash loses the counts of at most the last cycle; a
// state file that cannot be read is renamed aside and counting starts
// afresh, so a damaged file never stops reception.

// Defaults of zero StoreOptions limits.
const (
	DefaultMaxDomains = 10000
	DefaultMaxRecords = 1000
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
	Logger     *slog.Logger
}

// Store is the Recorder that counts results in daily windows. It is safe
// for concurrent use.
type Store struct {
	opts StoreOptions
	// flushMu orders flushes, so an older state never replaces a newer.
	flushMu sync.Mutex

	mu    sync.Mutex
	st    storeState
	dirty bool
}

var _ Recorder = (*Store)(nil)

// storeState is the store as saved.
type storeState struct {
	Version int `json:"version"`
	// Day is the UTC midnight that began the day of the open windows.
	Day  time.Time          `json:"day"`
	Open map[string]*Window `json:"open,omitempty"`
	// Closed windows wait for their report to be sent, oldest first.
	Closed []*Window `json:"closed,omitempty"`
	// DroppedResults counts results not counted (a cap, or a result
	// without a usable policy domain or source address);
	// DroppedWindows counts closed windows dropped unsent (too many, too
	// old).
	DroppedResults int64 `json:"droppedResults,omitempty"`
	DroppedWindows int64 `json:"droppedWindows,omitempty"`
	// LastSeq numbers windows: two cut in the same second stay apart.
	LastSeq uint64 `json:"lastSeq"`
}

const storeVersion = 1

// Window is one policy domain's rows over a time range.
type Window struct {
	// Seq is unique in the store; it identifies the window and its
	// report (ReportID).
	Seq    uint64    `json:"seq"`
	Domain string    `json:"domain"`
	Start  time.Time `json:"start"`
	// End is zero while the window is open; a day's window ends at the
	// last second of the day, a cut one when it was cut.
	End time.Time `json:"end,omitzero"`
	// Policy is the record as last seen in the window: a record changed
	// during the day is reported, and its rua used, as it is now.
	Policy Policy `json:"policy"`
	Rows   []*Row `json:"rows"`
	// DroppedResults counts this window's results not counted because it
	// had MaxRecords rows already.
	DroppedResults int64 `json:"droppedResults,omitempty"`
	// Sending state of a closed window.
	Attempts  int       `json:"attempts,omitempty"`
	NextTry   time.Time `json:"nextTry,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	// SentTo are the addresses that took the report already: a retry
	// goes to the others only.
	SentTo []string `json:"sentTo,omitempty"`

	// index finds a row by its key; built on first use, so a loaded or
	// cloned window needs no fix-up.
	index map[string]*Row
}

// Row is one group of identical results (RFC 7489 Appendix C: a record)
// and how many there were.
type Row struct {
	SourceIP    string `json:"sourceIP"`
	Disposition string `json:"disposition"`
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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxDomains <= 0 {
		opts.MaxDomains = DefaultMaxDomains
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = DefaultMaxRecords
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{opts: opts}
	now := opts.Now()
	s.st = storeState{Version: storeVersion, Day: dayOf(now), Open: map[string]*Window{}}
	if opts.Path == "" {
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("dmarcreport: %w", err)
	}
	b, err := os.ReadFile(opts.Path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dmarcreport: %w", err)
	}
	var st storeState
	err = json.Unmarshal(b, &st)
	if err == nil && st.Version != storeVersion {
		err = fmt.Errorf("version %d, want %d", st.Version, storeVersion)
	}
	if err != nil {
		// Counts are worth less than reception: keep the file for a look
		// and start afresh rather than refuse to start.
		aside := opts.Path + ".damaged-" + strconv.FormatInt(now.Unix(), 10)
		if rerr := os.Rename(opts.Path, aside); rerr != nil {
			return nil, fmt.Errorf("dmarcreport: %s unreadable (%v) and not renamed aside: %w", opts.Path, err, rerr)
		}
		opts.Logger.Error("dmarcreport: state unreadable, renamed aside; counting starts afresh", "path", opts.Path, "aside", aside, "err", err)
		return s, nil
	}
	st.sanitize(now)
	s.st = st
	s.mu.Lock()
	s.rollLocked(now)
	s.mu.Unlock()
	return s, nil
}

// sanitize makes a decoded state safe to use: JSON allows null windows
// and rows, and a file edited by hand may lack the day.
func (st *storeState) sanitize(now time.Time) {
	if st.Day.IsZero() {
		st.Day = dayOf(now)
	}
	open := map[string]*Window{}
	for _, w := range st.Open {
		if w != nil && w.Domain != "" {
			w.Rows = slices.DeleteFunc(w.Rows, func(r *Row) bool { return r == nil })
			open[w.Domain] = w
		}
	}
	st.Open = open
	st.Closed = slices.DeleteFunc(st.Closed, func(w *Window) bool { return w == nil })
	for _, w := range st.Closed {
		w.Rows = slices.DeleteFunc(w.Rows, func(r *Row) bool { return r == nil })
	}
}

// maxClosed bounds the closed windows kept: a few days of every domain.
func (s *Store) maxClosed() int { return 3 * s.opts.MaxDomains }

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
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
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollLocked(now)
	s.dirty = true
	if !ok {
		s.st.DroppedResults++
		return
	}
	w := s.st.Open[domain]
	if w == nil {
		if len(s.st.Open) >= s.opts.MaxDomains {
			s.st.DroppedResults++
			return
		}
		s.st.LastSeq++
		w = &Window{Seq: s.st.LastSeq, Domain: domain, Start: now.UTC().Truncate(time.Second)}
		s.st.Open[domain] = w
	}
	w.Policy = pol
	if x := w.row(key); x != nil {
		x.Count++
		return
	}
	if len(w.Rows) >= s.opts.MaxRecords {
		w.DroppedResults++
		s.st.DroppedResults++
		return
	}
	row.Count = 1
	w.Rows = append(w.Rows, row)
	w.index[key] = row
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
	for _, f := range []string{r.SourceIP, r.Disposition, strconv.FormatBool(r.DKIM), strconv.FormatBool(r.SPF),
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
	for _, l := range strings.Split(s, ".") {
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

// rollLocked closes the open windows when their UTC day has ended: they
// end at the day's last second.
func (s *Store) rollLocked(now time.Time) {
	today := dayOf(now)
	if !today.After(s.st.Day) {
		return
	}
	s.closeLocked(s.st.Day.Add(24*time.Hour - time.Second))
	s.st.Day = today
}

func (s *Store) closeLocked(end time.Time) {
	for _, d := range slices.Sorted(maps.Keys(s.st.Open)) {
		w := s.st.Open[d]
		w.End = end
		w.index = nil // no more rows: free the index
		s.st.Closed = append(s.st.Closed, w)
	}
	clear(s.st.Open)
	if n := len(s.st.Closed) - s.maxClosed(); n > 0 {
		s.st.DroppedWindows += int64(n)
		s.opts.Logger.Warn("dmarcreport: too many unsent reports; the oldest are dropped", "dropped", n)
		s.st.Closed = slices.Delete(s.st.Closed, 0, n)
	}
	s.dirty = true
}

// Cut closes every open window now, so that its report can be sent before
// the day ends; counting goes on in new windows from now.
func (s *Store) Cut() {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollLocked(now)
	s.closeLocked(now.UTC().Truncate(time.Second))
}

// Roll closes the windows of a day that has ended (Record does too, but
// the last results of a day may come long before the next).
func (s *Store) Roll() {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollLocked(now)
}

// Due returns copies of the closed windows whose report is due at now: at
// least delay after the window's end, and not before its next try after
// a failed send.
func (s *Store) Due(now time.Time, delay time.Duration) []*Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Window
	for _, w := range s.st.Closed {
		if now.Before(w.End.Add(delay)) || now.Before(w.NextTry) {
			continue
		}
		out = append(out, w.clone())
	}
	return out
}

// Pending is the number of closed windows not yet sent.
func (s *Store) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.st.Closed)
}

// Open returns a copy of the open window of domain, or nil.
func (s *Store) Open(domain string) *Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.st.Open[normName(domain)]; w != nil {
		return w.clone()
	}
	return nil
}

// Dropped returns the counts of results not counted and of windows
// dropped unsent.
func (s *Store) Dropped() (results, windows int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.DroppedResults, s.st.DroppedWindows
}

// Done removes a closed window (by Seq): its report was sent, or it is
// given up.
func (s *Store) Done(w *Window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Closed = slices.DeleteFunc(s.st.Closed, func(c *Window) bool { return c.Seq == w.Seq })
	s.dirty = true
}

// Failed records a failed send: the window is tried again at next.
func (s *Store) Failed(w *Window, next time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.st.Closed {
		if c.Seq == w.Seq {
			c.Attempts++
			c.NextTry = next
			c.LastError = err.Error()
		}
	}
	s.dirty = true
}

// sentTo records that the address took w's report.
func (s *Store) sentTo(w *Window, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.st.Closed {
		if c.Seq == w.Seq && !slices.Contains(c.SentTo, addr) {
			c.SentTo = append(c.SentTo, addr)
		}
	}
	s.dirty = true
}

// dropWindow counts a window given up unsent.
func (s *Store) dropWindow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.DroppedWindows++
	s.dirty = true
}

// clone is a deep copy of w, so the reporter reads a window while Record
// goes on.
func (w *Window) clone() *Window {
	c := *w
	c.index = nil
	c.Policy.Rua = slices.Clone(w.Policy.Rua)
	c.SentTo = slices.Clone(w.SentTo)
	c.Rows = make([]*Row, len(w.Rows))
	for i, r := range w.Rows {
		rc := *r
		rc.DKIMAuth = slices.Clone(r.DKIMAuth)
		c.Rows[i] = &rc
	}
	return &c
}

// Flush writes the state when it changed since the last flush.
func (s *Store) Flush() error {
	if s.opts.Path == "" {
		return nil
	}
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(&s.st)
	s.dirty = false
	s.mu.Unlock()
	if err == nil {
		err = atomicfile.Write(s.opts.Path, b, 0o600)
	}
	if err != nil {
		s.mu.Lock()
		s.dirty = true // try again next time
		s.mu.Unlock()
		return fmt.Errorf("dmarcreport: save counts: %w", err)
	}
	return nil
}
