package delivery

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/cuemta/cuemta/category"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/mtasts"
	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/smtpreply"
)

// Event types; they are the delivery log's (package deliverylog).
const (
	EventDelivery   = "delivery"
	EventTransient  = "transient"
	EventBounce     = "bounce"
	EventExpiry     = "expiry"
	EventSuspension = "suspension"
)

// Event is one delivery outcome, for the delivery log and metrics.
type Event struct {
	Time      time.Time `json:"time"`
	Type      string    `json:"type"` // one of the Event* constants
	MessageID string    `json:"message_id"`
	From      string    `json:"from"`
	Rcpt      string    `json:"rcpt,omitempty"`
	Site      string    `json:"site,omitempty"`
	MX        string    `json:"mx,omitempty"`
	Source    string    `json:"source,omitempty"`
	Pool      string    `json:"pool,omitempty"`
	Tenant    string    `json:"tenant,omitempty"`
	Campaign  string    `json:"campaign,omitempty"`
	Reply     string    `json:"reply,omitempty"`
	Class     string    `json:"class,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	// Category is why a transient, bounce or expiry happened (package
	// category); "" for other events.
	Category   string        `json:"category,omitempty"`
	Attempt    int           `json:"attempt"`
	Duration   time.Duration `json:"duration_ns,omitempty"`
	InQueue    time.Duration `json:"in_queue_ns,omitempty"`
	NextRetry  *time.Time    `json:"next_retry,omitempty"`
	Generation uint64        `json:"generation"`
	// TLS is the TLS of the connection the outcome came over; nil when
	// no connection carried the message (DNS, connection failures, held
	// mail).
	TLS *TLSOutcome `json:"tls,omitempty"`
	// DKIM is the envelope's record of the signatures put on the
	// message at reception (dkim.DecodeApplied reads it).
	DKIM string `json:"dkim,omitempty"`
}

// attempt is one delivery attempt of a message: one job per recipient
// domain, whose outcomes are gathered and written back to the spool when
// the last job finishes.
type attempt struct {
	sched   *Scheduler
	env     queue.Envelope
	policy  *Policy
	started time.Time

	bodyOnce sync.Once
	bodyData []byte
	bodyErr  error

	rcptOnce  sync.Once // recipient (bounce.go)
	rcptIndex map[string]int

	body7Once sync.Once // body7bit (downgrade.go)
	body7Data []byte
	body7Err  error

	mu       sync.Mutex
	jobs     int // outstanding
	parked   int // jobs left untried in a full lane's overflow
	results  []queue.RecipientResult
	next     time.Time
	failures []failure
	// successes are delivered recipients whose next hop lacks DSN, for a
	// NOTIFY=SUCCESS report; delays are deferred recipients due a delay
	// warning, with the time they will be given up (bounce.go).
	successes  []success
	delays     []failure
	delayUntil map[string]time.Time
}

// success is a recipient a next hop without DSN accepted.
type success struct {
	rcpt, status, diagnostic, remoteMTA string
	at                                  time.Time
}

// failure is a recipient that will not be delivered, for the DSN.
type failure struct {
	rcpt, status, diagnostic, remoteMTA string
	category                            string
	expired                             bool
}

// failureOfReply is the DSN entry of a recipient the reply failed: its
// status is the reply's (RFC 3464 §2.3.4), or 4.4.7 when the message
// expired (RFC 3463 §3.5: delivery time expired).
func failureOfReply(rcpt string, r smtpreply.Reply, remoteMTA, cat string, expired bool) failure {
	f := failure{rcpt: rcpt, status: r.Status(), diagnostic: r.String(), remoteMTA: remoteMTA, category: cat, expired: expired}
	if expired {
		f.status = "4.4.7"
		f.category = category.Expired
	}
	if f.status == "" {
		f.status = "5.0.0"
	}
	return f
}

// delayDue reports whether recipient rcpt, deferred at now, is due its
// one delay warning: delivery.delayWarning (0: never) has passed since
// reception and no warning went out yet. Whether its NOTIFY and the DSN
// mode let it be mailed is decided when it is sent (notifyDelay), which
// marks it either way.
func (att *attempt) delayDue(rcpt string, now time.Time) bool {
	w := att.policy.Config.Delivery.DelayWarning.D()
	return w > 0 && !now.Before(att.env.Received.Add(w)) && !att.recipient(rcpt).DelayNotified
}

// job is the recipients of one attempt that share a domain.
type job struct {
	att    *attempt
	domain string
	rcpts  []string
	hop    *hop
	lane   *lane
	tries  int // connection attempts that failed before it was sent
	// tls is the TLS of the connection the job was sent on; nil when it
	// was never sent on one.
	tls *TLSOutcome
	// sts is the domain's MTA-STS policy in force (enforce or testing),
	// nil for none; stsErr why a published one could not be had.
	sts    *mtasts.Policy
	stsErr error
}

// outcome is what happened to one recipient in this attempt.
type outcome struct {
	rcpt      string
	class     rules.Class // rules.Delivered, rules.Permanent or rules.Transient
	reply     smtpreply.Reply
	retryAt   time.Time // for transient outcomes; zero: by the retry schedule
	remoteMTA string
	rule      string
	hopDSN    bool // the next hop offered DSN (RFC 3461): it reports success itself
	// category is the deciding rule's or the one derived from the reply
	// (rules.ResponseDecision.Category); "" lets complete derive it.
	category string
}

// complete records the outcomes of a job; the attempt finishes with its
// last job.
func (j *job) complete(outs []outcome) {
	att := j.att
	e := att.sched
	now := e.opts.Now()
	eff := j.effective()
	// Before its MX hosts are known a destination is named by its domain.
	site, source, mxHost := "domain:"+j.domain, "", ""
	if j.hop != nil {
		site = j.hop.key
	}
	if j.lane != nil {
		source = j.lane.source
		mxHost = j.lane.lastMX()
	}
	att.mu.Lock()
	for _, o := range outs {
		ev := Event{Time: now, MessageID: att.env.ID, From: att.env.From, Rcpt: o.rcpt, Site: site, MX: mxHost, TLS: j.tls,
			Source: source, Pool: att.env.Pool, Tenant: att.env.Tenant, Campaign: att.env.Campaign,
			Reply: o.reply.String(), Rule: o.rule, Attempt: att.env.Attempts + 1, Duration: now.Sub(att.started),
			InQueue: now.Sub(att.env.Received), Generation: att.policy.Generation, DKIM: att.env.DKIM}
		cat := o.category
		if cat == "" && o.class != rules.Delivered {
			// A local outcome (failAll, retryAll, deferAll): its reply is
			// one the delivery made, whose code says why.
			cat = rules.CategoryOf(o.class, o.reply.Code, o.reply.Enhanced)
		}
		switch o.class {
		case rules.Delivered:
			ev.Type, ev.Class = EventDelivery, string(rules.Delivered)
			att.results = append(att.results, queue.RecipientResult{Addr: o.rcpt, Status: queue.RcptDelivered, Reply: o.reply.String()})
			if !o.hopDSN && att.recipient(o.rcpt).Notify&queue.NotifySuccess != 0 {
				st := o.reply.Status()
				if !strings.HasPrefix(st, "2.") {
					st = "2.0.0"
				}
				att.successes = append(att.successes, success{rcpt: o.rcpt, status: st, diagnostic: o.reply.String(), remoteMTA: o.remoteMTA, at: now})
			}
		case rules.Permanent:
			ev.Type, ev.Class, ev.Category = EventBounce, string(rules.Permanent), cat
			att.results = append(att.results, queue.RecipientResult{Addr: o.rcpt, Status: queue.RcptFailed, Reply: o.reply.String()})
			att.failures = append(att.failures, failureOfReply(o.rcpt, o.reply, o.remoteMTA, cat, false))
		default:
			expiry := att.env.Received.Add(eff.MaxAge())
			if !now.Before(expiry) {
				ev.Type, ev.Class, ev.Category = EventExpiry, string(rules.Permanent), category.Expired
				att.results = append(att.results, queue.RecipientResult{Addr: o.rcpt, Status: queue.RcptFailed, Reply: o.reply.String()})
				att.failures = append(att.failures, failureOfReply(o.rcpt, o.reply, o.remoteMTA, cat, true))
				break
			}
			at := o.retryAt
			if at.IsZero() {
				at = now.Add(retryDelay(eff, att.env.Attempts))
			}
			if at.After(expiry) {
				at = expiry
			}
			ev.Type, ev.Class, ev.NextRetry, ev.Category = EventTransient, string(rules.Transient), &at, cat
			att.results = append(att.results, queue.RecipientResult{Addr: o.rcpt, Status: queue.RcptPending, Reply: o.reply.String()})
			if att.delayDue(o.rcpt, now) {
				f := failureOfReply(o.rcpt, o.reply, o.remoteMTA, cat, false)
				if strings.HasPrefix(f.status, "5.") {
					// A permanent code a rule made transient: the report
					// says the delivery is still being tried (RFC 3463 §3.1).
					f.status = "4." + f.status[2:]
				}
				att.delays = append(att.delays, f)
				if att.delayUntil == nil {
					att.delayUntil = map[string]time.Time{}
				}
				att.delayUntil[o.rcpt] = expiry
			}
			if att.next.IsZero() || at.Before(att.next) {
				att.next = at
			}
		}
		e.opts.Events(ev)
	}
	att.jobs--
	last := att.jobs == 0
	att.mu.Unlock()
	if last {
		att.finishAsync()
	}
}

// finishAsync runs finish beside the caller, usually a lane's connection:
// finish waits for a spool commit (an fsync), and the connection can send
// its next message meanwhile. The message stays reserved until finish
// ends, so nothing else takes it up before its outcome is durable.
func (att *attempt) finishAsync() {
	e := att.sched
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		att.finish()
	}()
}

// park finishes a job untried: its lane was full and holds the message
// in its overflow instead (overflow.go).
func (j *job) park() {
	att := j.att
	att.mu.Lock()
	att.parked++
	att.jobs--
	last := att.jobs == 0
	att.mu.Unlock()
	if last {
		att.finish()
	}
}

// effective is the profile in force for the job (its lane's, or resolved
// from the domain alone when the job never reached a lane).
func (j *job) effective() *config.Effective {
	if j.lane != nil {
		if eff := j.lane.profile(); eff != nil {
			return eff
		}
	}
	eff, err := j.att.policy.Config.Resolve(j.domain, nil, "")
	if err != nil {
		// Resolve fails only if the embedded base profile is broken.
		panic(fmt.Sprintf("delivery: resolve profile: %v", err))
	}
	return eff
}

func (j *job) all(class rules.Class, reply smtpreply.Reply, retryAt time.Time) []outcome {
	outs := make([]outcome, len(j.rcpts))
	for i, r := range j.rcpts {
		outs[i] = outcome{rcpt: r, class: class, reply: reply, retryAt: retryAt}
	}
	return outs
}

// failAll bounces every recipient of the job.
func (j *job) failAll(reply smtpreply.Reply) { j.complete(j.all(rules.Permanent, reply, time.Time{})) }

// retryAll defers every recipient by the retry schedule.
func (j *job) retryAll(reply smtpreply.Reply) { j.complete(j.all(rules.Transient, reply, time.Time{})) }

// deferAll defers every recipient until a given time.
func (j *job) deferAll(until time.Time, reply smtpreply.Reply) {
	j.complete(j.all(rules.Transient, reply, until))
}

// finish writes the attempt's outcome to the spool and queues the DSN.
// The message stays reserved until its outcome is durable: a write the
// spool refuses (a full disk, an I/O error) is retried in the background
// (retryStateWrite), so the message is neither stranded with a stale
// schedule nor delivered again while its delivery goes unrecorded.
func (att *attempt) finish() {
	e := att.sched
	att.mu.Lock()
	results, next, failures, parked := att.results, att.next, att.failures, att.parked
	successes, delays, delayUntil := att.successes, att.delays, att.delayUntil
	att.mu.Unlock()
	if len(results) == 0 && parked > 0 {
		// Nothing was tried: every job waits in a full lane's overflow,
		// which releases the message when the lane has room. Parking is
		// neither an attempt nor a failure, so nothing is written.
		e.done(att.env.ID)
		return
	}
	now := e.opts.Now()
	if len(failures) > 0 {
		if err := att.bounce(failures); err != nil {
			// The sender must hear of the failure: keep the message, with
			// the failed recipients marked so the next attempt queues the
			// DSN instead of delivering to them again.
			e.opts.Logger.Error("spool DSN; the message stays queued to try again", "id", att.env.ID, "err", err)
			markBouncing(results, failures)
			next = earliest(next, now.Add(bounceRetry))
		}
	}
	if len(successes) > 0 {
		att.notifySuccess(successes)
	}
	if len(delays) > 0 {
		told := att.notifyDelay(delays, delayUntil)
		for i := range results {
			if told[results[i].Addr] {
				results[i].DelayNotified = true
			}
		}
	}
	if parked > 0 {
		next = earliest(next, now.Add(parkLease))
	}
	w := &stateWrite{id: att.env.ID, results: results, next: next}
	if next.IsZero() {
		w.outcome, w.reason = queue.OutcomeDelivered, "delivered"
		if len(failures) > 0 {
			w.outcome, w.reason = queue.OutcomeBounced, fmt.Sprintf("%d recipient(s) failed", len(failures))
			if allExpired(failures) {
				w.outcome, w.reason = queue.OutcomeExpired, "expired at max age"
			}
		}
	}
	if err := w.apply(e.opts.Store); err != nil && !errors.Is(err, queue.ErrNotFound) {
		e.opts.Logger.Error("spool: the attempt's outcome could not be recorded; retrying", "id", att.env.ID, "err", err)
		e.retryStateWrite(w)
		return
	}
	e.done(att.env.ID)
}

// bounceRetry is how soon a DSN the spool refused is tried again.
const bounceRetry = time.Minute

// earliest is the earlier of two times, a zero time meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// markBouncing turns the results of the failed recipients into
// RcptBouncing: failed, their DSN still to be queued.
func markBouncing(results []queue.RecipientResult, failures []failure) {
	failed := make(map[string]bool, len(failures))
	for _, f := range failures {
		failed[f.rcpt] = true
	}
	for i := range results {
		if failed[results[i].Addr] {
			results[i].Status = queue.RcptBouncing
		}
	}
}

// failureOf rebuilds the DSN entry of a recipient stored as RcptBouncing
// from its last reply, as the spool keeps it (smtpreply's String): a
// temporary reply means it expired. A reply that does not parse (written
// by hand, or by an older version) is a permanent failure named by its
// text.
func failureOf(r queue.Recipient) failure {
	reply, err := smtpreply.Parse(r.LastReply)
	if err != nil {
		return failure{rcpt: r.Addr, status: "5.0.0", diagnostic: r.LastReply, category: category.Other}
	}
	return failureOfReply(r.Addr, reply, "", category.Of(reply.Code, reply.Enhanced), reply.Temporary())
}

// LastCategory is the bounce category of a spooled recipient, derived
// again from its last reply as the spool keeps it (the spool stores no
// category; see docs/categories.md): the code's category, expired for a
// recipient that failed on a temporary reply, "" for one delivered or
// never tried. A rule's category that the reply's code does not imply
// (a "spam" text on a 5.7.1) is in the delivery log, not here.
func LastCategory(r queue.Recipient) string {
	if r.Status == queue.RcptDelivered || r.LastReply == "" {
		return ""
	}
	if r.Status == queue.RcptPending {
		reply, err := smtpreply.Parse(r.LastReply)
		if err != nil {
			return category.Other
		}
		return rules.CategoryOf(rules.Transient, reply.Code, reply.Enhanced)
	}
	return failureOf(r).category
}

// stateWrite is an attempt's outcome as the spool records it: the
// recipients' results with the next attempt, or, when nothing is left to
// try, the completion alone. A finished message leaves the index with its
// completion record, so recording its last results first would be one
// more synchronous commit per delivered message that nothing reads; the
// delivery log and the DSNs already have them. Until the one write is
// durable the message stays reserved, so it never looks due meanwhile.
type stateWrite struct {
	id      string
	results []queue.RecipientResult
	next    time.Time // zero: the message is finished
	outcome queue.Outcome
	reason  string
}

func (w *stateWrite) apply(st Store) error {
	if w.next.IsZero() {
		if err := st.Complete(w.id, w.outcome, w.reason); err != nil {
			return fmt.Errorf("complete: %w", err)
		}
		return nil
	}
	if err := st.RecordAttempt(w.id, w.results, w.next); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}

// retryStateWrite retries a refused state write with back-off, keeping
// the message reserved so no other attempt starts on it. If the scheduler
// stops first the message is released unrecorded: the spool still has it
// due, so it is tried again (at worst delivered twice, never lost).
func (e *Scheduler) retryStateWrite(w *stateWrite) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.done(w.id)
		ctx := e.runContext()
		delay := stateRetryMin
		for {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				e.opts.Logger.Warn("stopping with an attempt's outcome unrecorded; the message will be tried again", "id", w.id)
				return
			case <-t.C:
			}
			err := w.apply(e.opts.Store)
			if err == nil || errors.Is(err, queue.ErrNotFound) {
				e.opts.Logger.Info("spool: the attempt's outcome is recorded after a retry", "id", w.id)
				return
			}
			e.opts.Logger.Debug("spool: state write refused again", "id", w.id, "err", err)
			delay = min(2*delay, stateRetryMax)
		}
	}()
}

// Back-off of retryStateWrite.
var (
	stateRetryMin = time.Second
	stateRetryMax = 30 * time.Second
)

// retryDelay is the schedule's delay after the given number of earlier
// attempts (the last delay repeats), spread by the profile's jitter.
func retryDelay(eff *config.Effective, attempts int) time.Duration {
	sched := eff.RetrySchedule()
	if len(sched) == 0 {
		return 5 * time.Minute
	}
	d := sched[min(attempts, len(sched)-1)]
	if j := *eff.Settings.Retry.Jitter; j > 0 {
		d = time.Duration(float64(d) * (1 + j*(2*rand.Float64()-1)))
	}
	return max(d, 100*time.Millisecond)
}

// dnsFailureReply describes a resolution failure as an SMTP-style reply,
// so logs and DSNs read the same whatever failed.
func dnsFailureReply(err error) smtpreply.Reply {
	switch {
	case errors.Is(err, mx.ErrNullMX):
		return smtpreply.New(556, "5.1.10", "Recipient domain accepts no mail (null MX): "+err.Error()) // RFC 7505 §3
	case errors.Is(err, mx.ErrNoSuchDomain):
		return smtpreply.New(550, "5.1.2", "Recipient domain does not exist: "+err.Error())
	case errors.Is(err, mx.ErrNoAddress):
		return smtpreply.New(550, "5.1.2", "Recipient domain has no mail server address: "+err.Error())
	}
	return smtpreply.New(451, "4.4.3", "Temporary DNS failure: "+err.Error())
}

// suspendedReply is the reply recorded for mail a suspension holds back.
func suspendedReply(reason string) smtpreply.Reply {
	return smtpreply.New(451, "4.7.0", reason)
}

func allExpired(fs []failure) bool {
	for _, f := range fs {
		if !f.expired {
			return false
		}
	}
	return true
}
