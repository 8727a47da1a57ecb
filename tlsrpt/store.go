package tlsrpt

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cuemta/cuemta/internal/atomicfile"
)

// The store counts results per policy domain in windows. A window is open
// while results are added to it and closed (given an end) when the UTC
// day it belongs to ends, or earlier when a report is forced (Cut); a
// closed window waits in the store until its report is sent or it is too
// old to be worth sending.
//
// Memory is bounded: at most MaxDomains open windows (a result for one
// more domain is dropped and counted), at most MaxPolicies policies per
// window and MaxFailureDetails failure-detail groups per policy (a
// failure beyond them still counts in the policy's summary; only its
// detail is dropped, and counted), and at most MaxClosed closed windows
// (the oldest go first).
//
// Durability: the whole state is written to Path (replaced atomically,
// internal/atomicfile) by Flush, which the reporter calls every few
// seconds (Config flushInterval) and at shutdown. A crash loses the
// counts of at most the last flush interval; a state file that cannot be
// read is renamed aside and counting starts afresh, so a damaged file
// never stops delivery.

// Defaults of zero StoreOptions limits.
const (
	DefaultMaxDomains        = 10000
	DefaultMaxPolicies       = 8
	DefaultMaxFailureDetails = 100
)

// StoreOptions configure a Store.
type StoreOptions struct {
	// Path is the state file; "" keeps the counts in memory only.
	Path string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Limits; 0 means the default.
	MaxDomains, MaxPolicies, MaxFailureDetails int
	Logger                                     *slog.Logger
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
	// Dropped counts results not counted at all (MaxDomains open
	// windows) and closed windows dropped unsent (MaxClosed, too old).
	DroppedResults int64 `json:"droppedResults,omitempty"`
	DroppedWindows int64 `json:"droppedWindows,omitempty"`
	// DroppedDetails counts failures counted without a detail group
	// (MaxFailureDetails), over every window.
	DroppedDetails int64 `json:"droppedDetails,omitempty"`
	// LastSeq numbers windows: two cut in the same second stay apart.
	LastSeq uint64 `json:"lastSeq"`
}

const storeVersion = 1

// Window is one policy domain's counts over a time range.
type Window struct {
	// Seq is unique in the store; it identifies the window and its
	// report (ReportID).
	Seq    uint64    `json:"seq"`
	Domain string    `json:"domain"`
	Start  time.Time `json:"start"`
	// End is zero while the window is open; a day's window ends at the
	// last second of the day, a cut one when it was cut.
	End      time.Time       `json:"end,omitzero"`
	Policies []*PolicyCounts `json:"policies"`
	// Sending state of a closed window.
	Attempts  int       `json:"attempts,omitempty"`
	NextTry   time.Time `json:"nextTry,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	// SentTo are the rua URIs that took the report already: a retry
	// goes to the others only.
	SentTo []string `json:"sentTo,omitempty"`
}

// PolicyCounts are the sessions of one policy (RFC 8460 §4.4: the policy
// and its summary and failure details).
type PolicyCounts struct {
	Type    PolicyType       `json:"type"`
	Strings []string         `json:"strings,omitempty"`
	MXHosts []string         `json:"mxHosts,omitempty"`
	Success int64            `json:"success"`
	Failure int64            `json:"failure"`
	Details []*FailureDetail `json:"details,omitempty"`
	// DroppedDetails counts failures beyond MaxFailureDetails groups:
	// in Failure, not in any detail.
	DroppedDetails int64 `json:"droppedDetails,omitempty"`
}

// FailureDetail is one group of failed sessions (RFC 8460 §4.3).
type FailureDetail struct {
	Result        ResultType `json:"result"`
	SendingIP     string     `json:"sendingIP,omitempty"`
	ReceivingMX   string     `json:"receivingMX,omitempty"`
	ReceivingHELO string     `json:"receivingHELO,omitempty"`
	ReceivingIP   string     `json:"receivingIP,omitempty"`
	Count         int64      `json:"count"`
	// Reason is the first reason seen for the group.
	Reason string `json:"reason,omitempty"`
}

// OpenStore loads the state at opts.Path, if any.
func OpenStore(opts StoreOptions) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxDomains <= 0 {
		opts.MaxDomains = DefaultMaxDomains
	}
	if opts.MaxPolicies <= 0 {
		opts.MaxPolicies = DefaultMaxPolicies
	}
	if opts.MaxFailureDetails <= 0 {
		opts.MaxFailureDetails = DefaultMaxFailureDetails
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{opts: opts}
	s.st = storeState{Version: storeVersion, Day: dayOf(opts.Now()), Open: map[string]*Window{}}
	if opts.Path == "" {
		return s, nil
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o700); err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	b, err := os.ReadFile(opts.Path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: %w", err)
	}
	var st storeState
	if err := json.Unmarshal(b, &st); err != nil || st.Version != storeVersion {
		// Counts are worth less than delivery: keep the file for a look
		// and start afresh rather than refuse to start.
		aside := opts.Path + ".bad"
		if rerr := os.Rename(opts.Path, aside); rerr != nil {
			return nil, fmt.Errorf("tlsrpt: %s unreadable (%v) and not renamed aside: %w", opts.Path, err, rerr)
		}
		opts.Logger.Error("tlsrpt: state unreadable, renamed aside; counting starts afresh", "path", opts.Path, "aside", aside, "err", err, "version", st.Version)
		return s, nil
	}
	if st.Open == nil {
		st.Open = map[string]*Window{}
	}
	s.st = st
	s.mu.Lock()
	s.rollLocked(opts.Now())
	s.mu.Unlock()
	return s, nil
}

// maxClosed bounds the closed windows kept: a few days of every domain.
func (s *Store) maxClosed() int { return 3 * s.opts.MaxDomains }

func dayOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// Record counts one result in its domain's open window.
func (s *Store) Record(r Result) {
	domain := strings.ToLower(strings.TrimSuffix(r.PolicyDomain, "."))
	if domain == "" {
		return
	}
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollLocked(now)
	w := s.st.Open[domain]
	if w == nil {
		if len(s.st.Open) >= s.opts.MaxDomains {
			s.st.DroppedResults++
			s.dirty = true
			return
		}
		s.st.LastSeq++
		w = &Window{Seq: s.st.LastSeq, Domain: domain, Start: now.UTC().Truncate(time.Second)}
		s.st.Open[domain] = w
	}
	p := w.policy(r)
	if p == nil {
		if len(w.Policies) >= s.opts.MaxPolicies {
			s.st.DroppedResults++
			s.dirty = true
			return
		}
		p = &PolicyCounts{Type: r.PolicyType, Strings: slices.Clone(r.PolicyString), MXHosts: slices.Clone(r.MXHost)}
		w.Policies = append(w.Policies, p)
	}
	s.dirty = true
	if r.Failure == "" {
		p.Success++
		return
	}
	p.Failure++
	for _, d := range p.Details {
		if d.Result == r.Failure && d.SendingIP == r.SendingIP && d.ReceivingMX == r.ReceivingMX &&
			d.ReceivingHELO == r.ReceivingHELO && d.ReceivingIP == r.ReceivingIP {
			d.Count++
			return
		}
	}
	if len(p.Details) >= s.opts.MaxFailureDetails {
		p.DroppedDetails++
		s.st.DroppedDetails++
		return
	}
	p.Details = append(p.Details, &FailureDetail{Result: r.Failure, SendingIP: r.SendingIP, ReceivingMX: r.ReceivingMX,
		ReceivingHELO: r.ReceivingHELO, ReceivingIP: r.ReceivingIP, Count: 1, Reason: r.Reason})
}

func (w *Window) policy(r Result) *PolicyCounts {
	for _, p := range w.Policies {
		if p.Type == r.PolicyType && slices.Equal(p.Strings, r.PolicyString) && slices.Equal(p.MXHosts, r.MXHost) {
			return p
		}
	}
	return nil
}

// rollLocked closes the open windows when their UTC day has ended: they
// end at the day's last second (RFC 8460 §4.1: reports cover the UTC
// day).
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
		s.st.Closed = append(s.st.Closed, w)
	}
	clear(s.st.Open)
	if n := len(s.st.Closed) - s.maxClosed(); n > 0 {
		s.st.DroppedWindows += int64(n)
		s.opts.Logger.Warn("tlsrpt: too many unsent reports; the oldest are dropped", "dropped", n)
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
	if w := s.st.Open[domain]; w != nil {
		return w.clone()
	}
	return nil
}

// Dropped returns the counts of results and windows dropped by the caps.
func (s *Store) Dropped() (results, windows int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.DroppedResults, s.st.DroppedWindows
}

// DroppedDetails is the number of failures counted without a detail
// group, because their policy had MaxFailureDetails groups already.
func (s *Store) DroppedDetails() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.DroppedDetails
}

// Done removes a closed window (by Seq): its report was
// sent, or it is given up.
func (s *Store) Done(w *Window) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Closed = slices.DeleteFunc(s.st.Closed, func(c *Window) bool { return c.same(w) })
	s.dirty = true
}

// Failed records a failed send: the window is tried again at next.
func (s *Store) Failed(w *Window, next time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.st.Closed {
		if c.same(w) {
			c.Attempts++
			c.NextTry = next
			c.LastError = err.Error()
		}
	}
	s.dirty = true
}

// sentTo records that the rua u took w's report.
func (s *Store) sentTo(w *Window, u string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.st.Closed {
		if c.same(w) && !slices.Contains(c.SentTo, u) {
			c.SentTo = append(c.SentTo, u)
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

func (w *Window) same(o *Window) bool { return w.Seq == o.Seq }

func (w *Window) clone() *Window {
	b, _ := json.Marshal(w)
	c := &Window{}
	_ = json.Unmarshal(b, c)
	return c
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
		return fmt.Errorf("tlsrpt: save counts: %w", err)
	}
	return nil
}

// sortedDetails returns p's details in a stable order: by count
// (largest first), then by their fields.
func (p *PolicyCounts) sortedDetails() []*FailureDetail {
	ds := slices.Clone(p.Details)
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return strings.Join([]string{string(a.Result), a.ReceivingMX, a.ReceivingIP, a.SendingIP, a.ReceivingHELO}, "\x00") <
			strings.Join([]string{string(b.Result), b.ReceivingMX, b.ReceivingIP, b.SendingIP, b.ReceivingHELO}, "\x00")
	})
	return ds
}
