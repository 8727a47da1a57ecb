package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Bulk actions select messages with a MessageFilter and act on each with
// the single-message action (retry, bounce, delete) or a hold until a
// time (suspend). They are bounded so that they never stall delivery:
//
//   - at most BulkMax messages per request (the reply says when more
//     matched: run it again);
//   - BulkBatch messages at a time, bulkWorkers of them concurrently (the
//     spool commits their writes together), with a pause between batches
//     in which deliveries take the spool and the scheduler's locks;
//   - one bulk action at a time per server (409 while one runs);
//   - a request that is cancelled (the client went away) stops after its
//     batch, and its counts say how far it got.
//
// Each message acted on is recorded like its single action (an "admin"
// event with its id); the bulk action as a whole is one more "admin" event
// whose action is "bulk-ACTION" and whose reason carries the filter and
// the counts.
const (
	BulkMax     = 100_000
	BulkBatch   = 500
	bulkWorkers = 8
	// listMax bounds a page of GET /api/v1/messages.
	listMax     = 1000
	listDefault = 100
	// maxHold bounds a bulk suspend, like a suspension (suspensions.go).
	maxHold = 30 * 24 * time.Hour
)

// bulkPause is the pause between batches; tests shorten it.
var bulkPause = 20 * time.Millisecond

// Bulk actions, as in a bulk request's "action" and after "bulk-" in the
// action log.
var BulkActions = []string{ActionRetry, ActionBounce, ActionDelete, ActionSuspend}

// messagesResponse is a page of GET /api/v1/messages.
type messagesResponse struct {
	Filter   map[string]string `json:"filter"`
	Total    int               `json:"total"` // matching messages (up to BulkMax)
	Capped   bool              `json:"capped,omitempty"`
	Messages []MessageInfo     `json:"messages"`
	// Next is the "after" of the next page; absent on the last.
	Next string `json:"next,omitempty"`
}

// filterFromQuery reads the filter keys of a query; other keys are only
// those the caller allows.
func filterFromQuery(q url.Values, allowed ...string) (MessageFilter, error) {
	fields := map[string]string{}
	for k, vs := range q {
		if slices.Contains(allowed, k) {
			continue
		}
		if len(vs) != 1 {
			return MessageFilter{}, fmt.Errorf("filter %q given %d times: give each filter once", k, len(vs))
		}
		fields[k] = vs[0]
	}
	return ParseFilter(fields)
}

func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := filterFromQuery(q, "limit", "after")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "filters: "+strings.Join(FilterKeys, ", ")+"; paging: limit, after")
		return
	}
	limit := listDefault
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > listMax {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("bad limit %q: want 1 to %d", v, listMax), nil)
			return
		}
		limit = n
	}
	after := q.Get("after")
	if after != "" {
		if err := checkKey("after", after); err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), nil)
			return
		}
	}
	msgs, total, err := s.backend.Messages(r.Context(), f, BulkMax)
	if err != nil {
		s.backendError(w, r, "cannot list the messages", err)
		return
	}
	// msgs is ordered by id: the page starts after the cursor.
	i, _ := slices.BinarySearchFunc(msgs, after, func(m MessageInfo, id string) int { return strings.Compare(m.ID, id) })
	if i < len(msgs) && msgs[i].ID == after {
		i++
	}
	page := msgs[i:min(i+limit, len(msgs))]
	resp := messagesResponse{Filter: f.Fields(), Total: total, Capped: total > len(msgs), Messages: page}
	if resp.Messages == nil {
		resp.Messages = []MessageInfo{}
	}
	if i+limit < len(msgs) {
		resp.Next = page[len(page)-1].ID
	}
	writeJSON(w, http.StatusOK, resp)
}

// bulkRequest is the body of POST /api/v1/messages/bulk.
type bulkRequest struct {
	Action string            `json:"action"`
	Filter map[string]string `json:"filter"`
	// All must be true to act on every message (an empty filter): a
	// forgotten filter must not bounce the whole queue.
	All    bool   `json:"all"`
	DryRun bool   `json:"dry_run"`
	Reason string `json:"reason"`
	// Duration is how long a suspend holds the messages (Go duration).
	Duration string `json:"duration"`
}

// BulkResult is the reply of a bulk action or of its dry run.
type BulkResult struct {
	Action  string            `json:"action"`
	Filter  map[string]string `json:"filter"`
	DryRun  bool              `json:"dry_run"`
	Matched int               `json:"matched"` // messages the filter selected
	// Limit is BulkMax; Capped says more matched than one request acts on.
	Limit  int  `json:"limit"`
	Capped bool `json:"capped,omitempty"`
	// Done were acted on; Gone had left the queue meanwhile (delivered,
	// say); Failed could not be (busy in a delivery attempt, or an
	// error), with the first few errors.
	Done      int       `json:"done"`
	Gone      int       `json:"gone"`
	Failed    int       `json:"failed"`
	Errors    []string  `json:"errors,omitempty"`
	Until     time.Time `json:"until,omitzero"` // suspend
	Cancelled bool      `json:"cancelled,omitempty"`
}

// maxBulkErrors bounds BulkResult.Errors.
const maxBulkErrors = 10

func (s *Server) handleBulk(w http.ResponseWriter, r *http.Request) {
	var req bulkRequest
	if e := decodeJSON(w, r, s.opts.maxBodyBytes, strict, &req); e != nil {
		e.write(w)
		return
	}
	if !slices.Contains(BulkActions, req.Action) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad action %q", req.Action), "action must be one of: "+strings.Join(BulkActions, ", "))
		return
	}
	f, err := ParseFilter(req.Filter)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "filters: "+strings.Join(FilterKeys, ", "))
		return
	}
	if f.Empty() && !req.All {
		writeError(w, http.StatusBadRequest, "no filter: a bulk action on every message needs \"all\": true", "filters: "+strings.Join(FilterKeys, ", "))
		return
	}
	if err := checkText("reason", req.Reason); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	var hold time.Duration
	switch {
	case req.Action == ActionSuspend:
		hold, err = time.ParseDuration(req.Duration)
		if err != nil || hold <= 0 || hold > maxHold {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("bad duration %q", req.Duration), "suspend needs a positive Go duration up to 720h (90m, 1h, 24h)")
			return
		}
	case req.Duration != "":
		writeError(w, http.StatusBadRequest, "duration is only for suspend", nil)
		return
	case req.Reason != "" && req.Action != ActionBounce:
		writeError(w, http.StatusBadRequest, "reason is only for bounce and suspend", nil)
		return
	}
	if !s.bulkMu.TryLock() {
		writeError(w, http.StatusConflict, "another bulk action is running", "wait for it to finish (one bulk action at a time keeps delivery going)")
		return
	}
	defer s.bulkMu.Unlock()
	msgs, total, err := s.backend.Messages(r.Context(), f, BulkMax)
	if err != nil {
		s.backendError(w, r, "cannot list the messages", err)
		return
	}
	res := BulkResult{Action: req.Action, Filter: f.Fields(), DryRun: req.DryRun, Matched: total, Limit: BulkMax, Capped: total > len(msgs)}
	if req.Action == ActionSuspend {
		res.Until = s.opts.now().Add(hold).UTC()
	}
	if req.DryRun {
		writeJSON(w, http.StatusOK, res)
		return
	}
	reason := req.Reason
	if req.Action == ActionBounce && reason == "" {
		reason = defaultBounceReason
	}
	ids := make([]string, len(msgs))
	for i := range msgs {
		ids[i] = msgs[i].ID
	}
	s.runBulk(r, &res, ids, reason)
	ev := ActionEvent{Action: "bulk-" + req.Action, Reason: bulkSummary(f, &res, reason), Count: res.Done, Until: res.Until}
	if res.Failed > 0 {
		ev.Err = fmt.Errorf("%d of %d failed", res.Failed, len(ids))
	}
	s.record(r, ev)
	writeJSON(w, http.StatusOK, res)
}

// bulkSummary is the reason of a bulk action's log event: its filter,
// its reason and its counts.
func bulkSummary(f MessageFilter, res *BulkResult, reason string) string {
	s := fmt.Sprintf("filter %s; %d matched, %d done, %d gone, %d failed", f, res.Matched, res.Done, res.Gone, res.Failed)
	if res.Capped {
		s += fmt.Sprintf(" (capped at %d)", res.Limit)
	}
	if res.Cancelled {
		s += "; cancelled"
	}
	if reason != "" {
		s = reason + "; " + s
	}
	return s
}

// runBulk acts on ids in batches (see BulkMax).
func (s *Server) runBulk(r *http.Request, res *BulkResult, ids []string, reason string) {
	ctx := r.Context()
	var mu sync.Mutex
	for start := 0; start < len(ids); start += BulkBatch {
		if start > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(bulkPause):
			}
		}
		if ctx.Err() != nil {
			res.Cancelled = true
			return
		}
		batch := ids[start:min(start+BulkBatch, len(ids))]
		work := make(chan string)
		var wg sync.WaitGroup
		for range min(bulkWorkers, len(batch)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range work {
					err := s.bulkOne(context.WithoutCancel(ctx), r, res.Action, id, reason, res.Until)
					mu.Lock()
					switch {
					case err == nil:
						res.Done++
					case errors.Is(err, ErrNotFound):
						res.Gone++
					default:
						res.Failed++
						if len(res.Errors) < maxBulkErrors {
							res.Errors = append(res.Errors, id+": "+err.Error())
						}
					}
					mu.Unlock()
				}
			}()
		}
		for _, id := range batch {
			work <- id
		}
		close(work)
		wg.Wait()
	}
}

// bulkOne performs one message's part of a bulk action and records it as
// the single action does. A message that left the queue meanwhile is not
// recorded: nothing happened to it.
func (s *Server) bulkOne(ctx context.Context, r *http.Request, action, id, reason string, until time.Time) error {
	var err error
	ev := ActionEvent{Action: action, MessageID: id}
	switch action {
	case ActionRetry:
		err = s.backend.Retry(ctx, id)
	case ActionBounce:
		err = s.backend.Bounce(ctx, id, reason)
		ev.Reason = reason
	case ActionDelete:
		err = s.backend.Delete(ctx, id)
	case ActionSuspend:
		err = s.backend.Hold(ctx, id, until)
		ev.Until, ev.Reason = until, reason
	}
	if errors.Is(err, ErrNotFound) {
		return err
	}
	ev.Err = err
	s.record(r, ev)
	return err
}
