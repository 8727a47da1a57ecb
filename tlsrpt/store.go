package tlsrpt

import (
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cuemta/cuemta/internal/reportbook"
)

// The store counts results per policy domain in daily windows; their
// life (open, closed at the UTC day's end or by Cut, kept until sent),
// the caps on open and closed windows and the state file are
// internal/reportbook's. The reporter flushes the state every few
// seconds (Config flushInterval) and at shutdown.
//
// What the store adds to the book's bounds: at most MaxPolicies policies
// per window and MaxFailureDetails failure-detail groups per policy (a
// failure beyond them still counts in the policy's summary; only its
// detail is dropped, and counted).

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

// Store is the Recorder that counts results in daily windows (the
// windows' life and file are internal/reportbook's). It is safe for
// concurrent use.
type Store struct {
	*reportbook.Book[*Window]
	opts StoreOptions
}

var _ Recorder = (*Store)(nil)

// storeVersion is the state file's format.
const storeVersion = 1

// droppedDetails is the book's counter of failures counted without a
// detail group (MaxFailureDetails), over every window.
const droppedDetails = "droppedDetails"

// Window is one policy domain's counts over a time range.
type Window struct {
	reportbook.Head
	Policies []*PolicyCounts `json:"policies"`
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
	if opts.MaxDomains <= 0 {
		opts.MaxDomains = DefaultMaxDomains
	}
	if opts.MaxPolicies <= 0 {
		opts.MaxPolicies = DefaultMaxPolicies
	}
	if opts.MaxFailureDetails <= 0 {
		opts.MaxFailureDetails = DefaultMaxFailureDetails
	}
	b, err := reportbook.Open(reportbook.Options[*Window]{Name: "tlsrpt", Path: opts.Path, Version: storeVersion,
		Now: opts.Now, MaxDomains: opts.MaxDomains, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	return &Store{Book: b, opts: opts}, nil
}

// Record counts one result in its domain's open window.
func (s *Store) Record(r Result) {
	domain := strings.ToLower(strings.TrimSuffix(r.PolicyDomain, "."))
	if domain == "" {
		return
	}
	s.Book.Record(domain, func(h reportbook.Head) *Window { return &Window{Head: h} }, func(w *Window, st *reportbook.State[*Window]) {
		p := w.policy(r)
		if p == nil {
			if len(w.Policies) >= s.opts.MaxPolicies {
				st.DroppedResults++
				return
			}
			p = &PolicyCounts{Type: r.PolicyType, Strings: slices.Clone(r.PolicyString), MXHosts: slices.Clone(r.MXHost)}
			w.Policies = append(w.Policies, p)
		}
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
			st.Count(droppedDetails)
			return
		}
		p.Details = append(p.Details, &FailureDetail{Result: r.Failure, SendingIP: r.SendingIP, ReceivingMX: r.ReceivingMX,
			ReceivingHELO: r.ReceivingHELO, ReceivingIP: r.ReceivingIP, Count: 1, Reason: r.Reason})
	})
}

func (w *Window) policy(r Result) *PolicyCounts {
	for _, p := range w.Policies {
		if p.Type == r.PolicyType && slices.Equal(p.Strings, r.PolicyString) && slices.Equal(p.MXHosts, r.MXHost) {
			return p
		}
	}
	return nil
}

// Open returns a copy of the open window of domain, or nil.
func (s *Store) Open(domain string) *Window {
	w, _ := s.OpenWindow(domain)
	return w
}

// DroppedDetails is the number of failures counted without a detail
// group, because their policy had MaxFailureDetails groups already.
func (s *Store) DroppedDetails() int64 { return s.Counter(droppedDetails) }

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
