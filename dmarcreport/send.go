package dmarcreport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// ReportListener is the Listener of the envelopes of report mail. It is
// no valid listener name, so no received message carries it; reception
// records no DMARC result for such a message, so a report about report
// mail cannot loop (as tlsrpt.ReportListener).
const ReportListener = "@dmarc"

// Settings are the reporter's settings from the config in force; they are
// read at every cycle, so a reload applies to the next.
type Settings struct {
	Submitter
	// MailFrom is the report mail's envelope sender and From.
	MailFrom string
	// Delay is how long after a day's end its reports go out, plus a
	// per-domain share of Jitter (spreading them keeps every receiver
	// from mailing at 00:00 UTC). Retry is the wait before a failed send
	// is tried again; MaxAge is how long after its end a report is still
	// worth sending.
	Delay, Jitter, Retry, MaxAge time.Duration
}

// ReporterOptions configure a Reporter.
type ReporterOptions struct {
	Store    *Store
	Settings func() Settings
	// LookupTXT returns the TXT records of a name, each the concatenation
	// of its strings; a name with none (NXDOMAIN, NODATA) is an empty
	// list and no error: an error is a failure worth retrying.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// Enqueue queues a report mail for delivery through this MTA and
	// returns its spool id.
	Enqueue func(ctx context.Context, from, to string, msg []byte) (string, error)
	Now     func() time.Time
	Logger  *slog.Logger
}

// Reporter sends the reports of closed windows to each policy's rua.
type Reporter struct {
	opts ReporterOptions
	// mu serialises cycles and forced sends, so that a window is never
	// sent by both at once.
	mu sync.Mutex
}

// NewReporter returns a Reporter.
func NewReporter(opts ReporterOptions) *Reporter {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Reporter{opts: opts}
}

// Sent is what became of one window's report.
type Sent struct {
	Domain   string `json:"domain"`
	ReportID string `json:"report_id"`
	Start    string `json:"start"`
	End      string `json:"end"`
	// Rua are the addresses it was queued to this time; Queued their
	// spool ids.
	Rua    []string `json:"rua,omitempty"`
	Queued []string `json:"queued,omitempty"`
	// Refused are the rua not used, each "uri: why" (not mailto, over its
	// size limit, external destination not verified, more than MaxRua).
	Refused []string `json:"refused,omitempty"`
	// Outcome is "sent", "no-rua" (no rua took it or could), "retry"
	// (some rua failed; tried again later) or "expired" (given up).
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// Cycle closes the windows of a day that has ended and sends every report
// that is due: its window ended Delay plus the domain's jitter ago, and
// any earlier failed try waited Retry.
func (r *Reporter) Cycle(ctx context.Context) []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.opts.Settings()
	var out []Sent
	for _, w := range r.opts.Store.Ripe(r.opts.Now(), set.Delay, set.Jitter) {
		out = append(out, r.send(ctx, w, set))
	}
	r.opts.Store.Recount()
	return out
}

// SendNow closes every open window (Store.Cut) and sends every pending
// report at once, whatever Delay, jitter and retry waits say: the admin
// API's POST /api/v1/dmarc/send.
func (r *Reporter) SendNow(ctx context.Context) []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.opts.Settings()
	var out []Sent
	for _, w := range r.opts.Store.CutAll() {
		out = append(out, r.send(ctx, w, set))
	}
	r.opts.Store.Recount()
	return out
}

// send sends one window's report to every usable rua it has not reached
// yet. A rua refused for good (not mailto:, too small, not verified)
// does not hold the window back; one that failed for now (a lookup, the
// queue) makes the window wait Retry, and only such ones are tried again.
func (r *Reporter) send(ctx context.Context, w *Window, set Settings) Sent {
	log := r.opts.Logger.With("domain", w.Domain)
	rep := BuildReport(w, set.Submitter)
	id := rep.Metadata.ReportID
	res := Sent{Domain: w.Domain, ReportID: id, Start: w.Start.UTC().Format(time.RFC3339), End: w.End.UTC().Format(time.RFC3339)}
	now := r.opts.Now()
	if set.MaxAge > 0 && now.After(w.End.Add(set.MaxAge)) {
		log.Warn("dmarcreport: report given up", "report_id", id, "attempts", w.Attempts, "last_error", w.LastError)
		r.opts.Store.GiveUp(w.Seq)
		res.Outcome, res.Error = "expired", w.LastError
		return res
	}
	retry := func(err error) Sent {
		log.Warn("dmarcreport: report not sent everywhere; trying again later", "report_id", id, "err", err)
		r.opts.Store.Failed(w.Seq, now.Add(set.Retry), err)
		res.Outcome, res.Error = "retry", err.Error()
		return res
	}
	if set.MailFrom == "" {
		return retry(errors.New("dmarcreport: no sender address for report mail (MailFrom)"))
	}
	var errs []error
	refuse := func(uri, why string) {
		res.Refused = append(res.Refused, uri+": "+why)
		log.Info("dmarcreport: rua refused", "report_id", id, "rua", uri, "why", why)
	}
	took := len(w.SentTo)
	var seen []string
	for _, uri := range w.Policy.Rua {
		d, err := ParseRua(uri)
		if err != nil {
			refuse(d.URI, err.Error())
			continue
		}
		if slices.Contains(seen, d.Address) {
			continue // listed twice: one report is enough
		}
		seen = append(seen, d.Address)
		if len(seen) > MaxRua {
			refuse(d.URI, fmt.Sprintf("more than %d rua", MaxRua))
			continue
		}
		if slices.Contains(w.SentTo, d.Address) {
			continue // took it on an earlier try
		}
		msg, err := BuildMail(rep, w, set.Submitter, MailParams{From: set.MailFrom, To: d.Address, Date: now})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.URI, err))
			continue
		}
		// RFC 7489 §6.2: a report larger than the limit is not sent there.
		if d.Limit > 0 && int64(len(msg)) > d.Limit {
			refuse(d.URI, fmt.Sprintf("over its size limit (%d bytes, limit %d)", len(msg), d.Limit))
			continue
		}
		// RFC 7489 §7.1: a destination outside the policy domain's
		// organisational domain must agree to take its reports.
		if NeedsVerification(w.Domain, d.Domain) {
			name := VerificationName(w.Domain, d.Domain)
			txts, err := r.opts.LookupTXT(ctx, name)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: look up %s: %w", d.URI, name, err))
				continue
			}
			if !Verified(txts) {
				refuse(d.URI, "external destination not verified (no v=DMARC1 record at "+name+")")
				continue
			}
		}
		sid, err := r.opts.Enqueue(ctx, set.MailFrom, d.Address, msg)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: queue report mail: %w", d.URI, err))
			continue
		}
		took++
		res.Rua = append(res.Rua, d.Address)
		res.Queued = append(res.Queued, sid)
		r.opts.Store.SentTo(w.Seq, d.Address)
		log.Info("dmarcreport: report queued", "report_id", id, "rua", d.Address, "queued", sid, "bytes", len(msg))
	}
	if len(errs) > 0 {
		return retry(errors.Join(errs...))
	}
	r.opts.Store.Done(w.Seq)
	if took == 0 {
		// Nobody can take it: the counts are dropped, as for a record
		// without rua (RFC 7489 §7.2: reports go to rua only).
		log.Debug("dmarcreport: no usable rua; report dropped", "report_id", id, "refused", res.Refused)
		res.Outcome = "no-rua"
		return res
	}
	res.Outcome = "sent"
	return res
}

// Run runs a cycle every interval and flushes the store, until ctx ends;
// then it flushes one last time.
func (r *Reporter) Run(ctx context.Context, interval time.Duration) {
	r.opts.Store.Run(ctx, interval, func() { r.Cycle(ctx) })
}
