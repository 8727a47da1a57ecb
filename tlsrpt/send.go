package tlsrpt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// ReportListener is the Listener of the envelopes of report mail. It is
// no valid listener name (those match #Name), so no received message
// carries it; delivery records no TLS result for such a message (RFC
// 8460 §5.3: the report's own session "SHOULD NOT" be in the next
// report, and a report about report mail would loop).
const ReportListener = "@tlsrpt"

// Settings are the reporter's settings from the config in force; they are
// read at every cycle, so a reload applies to the next.
type Settings struct {
	Submitter
	// MailFrom is the report mail's envelope sender and From.
	MailFrom string
	// Delay is how long after a day's end its reports go out, plus a
	// per-domain share of Jitter (RFC 8460 §4.1 asks for daily reports;
	// spreading them keeps every sender from posting at 00:00 UTC).
	Delay, Jitter time.Duration
	// HTTPTimeout bounds one https: upload (RFC 8460 §5.2).
	HTTPTimeout time.Duration
	// Retry is the wait before a failed send is tried again; MaxAge is
	// how long after its end a report is still worth sending.
	Retry, MaxAge time.Duration
}

// ReporterOptions configure a Reporter.
type ReporterOptions struct {
	Store    *Store
	Settings func() Settings
	// LookupTXT returns the TXT records of a name, each the concatenation
	// of its strings; a name with none (NXDOMAIN, NODATA) is an empty
	// list and no error: an error is a failure worth retrying.
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// Enqueue queues a report mail for delivery through this MTA.
	Enqueue func(ctx context.Context, from, to string, msg []byte) (string, error)
	// HTTP posts to https: rua; default a client with the system roots
	// that follows redirects to https: only.
	HTTP   *http.Client
	Now    func() time.Time
	Logger *slog.Logger
}

// Reporter sends the reports of closed windows to each domain's rua.
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
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{CheckRedirect: httpsOnly}
	}
	return &Reporter{opts: opts}
}

// Sent is what became of one window's report.
type Sent struct {
	Domain   string   `json:"domain"`
	ReportID string   `json:"report_id"`
	Start    string   `json:"start"`
	End      string   `json:"end"`
	Rua      []string `json:"rua,omitempty"`    // where it went, this time
	Queued   []string `json:"queued,omitempty"` // the spool ids of mailto: reports
	// Outcome is "sent", "no-record" (the domain asks for none), "retry"
	// (some rua failed; tried again later) or "expired" (given up).
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// Cycle closes the windows of a day that has ended and sends every report
// that is due: its day ended Delay plus the domain's jitter ago, and any
// earlier failed try waited Retry.
func (r *Reporter) Cycle(ctx context.Context) []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.opts.Settings()
	var out []Sent
	for _, w := range r.opts.Store.Ripe(r.opts.Now(), set.Delay, set.Jitter) {
		out = append(out, r.send(ctx, w, set))
	}
	return out
}

// SendNow closes every open window (Store.Cut) and sends every pending
// report at once, whatever Delay, jitter and retry waits say: the admin
// API's POST /api/v1/tlsrpt/send.
func (r *Reporter) SendNow(ctx context.Context) []Sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.opts.Settings()
	var out []Sent
	for _, w := range r.opts.Store.CutAll() {
		out = append(out, r.send(ctx, w, set))
	}
	return out
}

// send sends one window's report to every rua it has not reached yet.
func (r *Reporter) send(ctx context.Context, w *Window, set Settings) Sent {
	log := r.opts.Logger
	rep := BuildReport(w, set.Submitter)
	res := Sent{Domain: w.Domain, ReportID: rep.ReportID, Start: w.Start.UTC().Format(time.RFC3339), End: w.End.UTC().Format(time.RFC3339)}
	now := r.opts.Now()
	fail := func(err error) Sent {
		res.Error = err.Error()
		if set.MaxAge > 0 && now.After(w.End.Add(set.MaxAge)) {
			log.Warn("tlsrpt: report given up", "domain", w.Domain, "report_id", rep.ReportID, "attempts", w.Attempts+1, "err", err)
			r.opts.Store.GiveUp(w.Seq)
			res.Outcome = "expired"
			return res
		}
		log.Warn("tlsrpt: report not sent; trying again later", "domain", w.Domain, "report_id", rep.ReportID, "err", err)
		r.opts.Store.Failed(w.Seq, now.Add(set.Retry), err)
		res.Outcome = "retry"
		return res
	}
	txts, err := r.opts.LookupTXT(ctx, RecordName(w.Domain))
	if err != nil {
		return fail(fmt.Errorf("look up %s: %w", RecordName(w.Domain), err))
	}
	rua, err := ParseRecords(txts)
	if errors.Is(err, ErrNoRecord) {
		// The domain asks for no reports (or publishes a record we must
		// ignore): the counts are dropped, as RFC 8460 §3 says.
		log.Debug("tlsrpt: no report wanted", "domain", w.Domain, "why", err)
		r.opts.Store.Done(w.Seq)
		res.Outcome, res.Error = "no-record", err.Error()
		return res
	}
	var errs []error
	for _, u := range rua {
		us := u.String()
		if slices.Contains(w.SentTo, us) {
			continue
		}
		var id string
		var err error
		switch strings.ToLower(u.Scheme) {
		case "mailto":
			id, err = r.mail(ctx, rep, w, set, u)
		case "https":
			err = r.post(ctx, rep, set, u)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", us, err))
			continue
		}
		if id != "" {
			res.Queued = append(res.Queued, id)
		}
		res.Rua = append(res.Rua, us)
		r.opts.Store.SentTo(w.Seq, us)
		log.Info("tlsrpt: report sent", "domain", w.Domain, "report_id", rep.ReportID, "rua", us, "queued", id)
	}
	if len(errs) > 0 {
		return fail(errors.Join(errs...))
	}
	r.opts.Store.Done(w.Seq)
	res.Outcome = "sent"
	return res
}

// mail queues the report as a message to a mailto: rua (RFC 8460 §5.3).
func (r *Reporter) mail(ctx context.Context, rep *Report, w *Window, set Settings, u *url.URL) (string, error) {
	to, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return "", err
	}
	msg, err := BuildMail(rep, w, set.Submitter, MailParams{From: set.MailFrom, To: to, Date: r.opts.Now()})
	if err != nil {
		return "", err
	}
	return r.opts.Enqueue(ctx, set.MailFrom, to, msg)
}

// post uploads the gzipped report to an https: rua (RFC 8460 §5.2): a
// 2xx answer is success; anything else, or no answer within HTTPTimeout,
// is tried again at the next cycle.
func (r *Reporter) post(ctx context.Context, rep *Report, set Settings, u *url.URL) error {
	gz, err := rep.Gzip()
	if err != nil {
		return err
	}
	if set.HTTPTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, set.HTTPTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(gz))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/tlsrpt+gzip")
	resp, err := r.opts.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// httpsOnly follows a redirect only to another https: URL (at most 5):
// a report is never sent in clear text because a collector said so.
func httpsOnly(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %s refused: reports go over https only", req.URL.Redacted())
	}
	if len(via) >= 5 {
		return errors.New("more than 5 redirects")
	}
	return nil
}

// Run runs a cycle every interval and flushes the store, until ctx ends;
// then it flushes one last time.
func (r *Reporter) Run(ctx context.Context, interval time.Duration) {
	r.opts.Store.Run(ctx, interval, func() { r.Cycle(ctx) })
}
