package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// injectWorkers enqueue the messages of one request in parallel, so that
// they share the spool's group commits instead of waiting for one fsync
// each.
const injectWorkers = 16

// injectResponse is KumoMTA's reply body. On an error it also carries
// error and detail, like every error of this API; ids (a cuemta
// extension) are the queue ids of the enqueued messages.
type injectResponse struct {
	SuccessCount     int      `json:"success_count"`
	FailCount        int      `json:"fail_count"`
	FailedRecipients []string `json:"failed_recipients"`
	Errors           []string `json:"errors"`
	IDs              []string `json:"ids,omitempty"`
	Error            string   `json:"error,omitempty"`
	Detail           any      `json:"detail,omitempty"`
}

func (s *Server) handleInject(w http.ResponseWriter, r *http.Request) {
	var req injectRequest
	if e := decodeJSON(w, r, s.opts.maxInjectBytes, 0, &req); e != nil {
		msg := e.msg
		if e.detail != nil {
			msg = fmt.Sprintf("%s: %v", e.msg, e.detail)
		}
		writeJSON(w, e.status, injectResponse{FailedRecipients: []string{}, Errors: []string{msg}, Error: e.msg, Detail: e.detail})
		return
	}
	plan, problems := s.prepareInject(&req)
	if len(problems) > 0 {
		failed := make([]string, 0, len(req.Recipients))
		for _, rc := range req.Recipients {
			failed = append(failed, rc.Email)
		}
		msg := "invalid injection request: " + problems[0]
		if len(problems) > 1 {
			msg = fmt.Sprintf("invalid injection request: %s (and %d more problems)", problems[0], len(problems)-1)
		}
		writeJSON(w, http.StatusBadRequest, injectResponse{
			FailCount: len(failed), FailedRecipients: failed, Errors: problems,
			Error: msg, Detail: "nothing was injected",
		})
		return
	}
	if ignored := req.ignoredFeatures(); len(ignored) > 0 {
		s.log.Warn("injection uses features cuemta does not support; content sent as written",
			"ignored", strings.Join(ignored, ", "), "client", clientIP(r))
	}

	resp, storageFailed := s.enqueueAll(r.Context(), &req, plan, clientIP(r))
	s.record(r, ActionEvent{Action: ActionInject, Injected: resp.SuccessCount, Failed: resp.FailCount, Err: firstError(resp)})
	status := http.StatusOK
	if resp.SuccessCount == 0 {
		status = http.StatusUnprocessableEntity
		resp.Error = "no message was injected"
		if storageFailed {
			status = http.StatusServiceUnavailable
			resp.Error = "no message was injected: the server could not store them; retry later"
		}
	}
	writeJSON(w, status, resp)
}

func firstError(resp *injectResponse) error {
	if len(resp.Errors) == 0 {
		return nil
	}
	return errors.New(resp.Errors[0])
}

// maxRecipientsPerMessage is how many recipients of one injection share
// a stored message when the content is the same for all of them (the
// default listeners.*.limits.maxRecipients): one body is stored per
// batch instead of one per recipient, and no envelope grows so large that
// recording a delivery attempt rewrites megabytes.
const maxRecipientsPerMessage = 1000

// injectPlan says how a request's recipients become stored messages.
type injectPlan struct {
	// perMessage recipients share one message: 1 when the body names its
	// recipient (the builder's To), maxRecipientsPerMessage otherwise.
	perMessage int
	// body builds the body of the message whose recipients start at
	// index first. It is called in recipient order.
	body func(first int) []byte
}

// prepareInject validates the request and plans its messages.
func (s *Server) prepareInject(req *injectRequest) (*injectPlan, []string) {
	if problems := req.validate(); len(problems) > 0 {
		return nil, problems
	}
	text, obj, err := parseContent(req.Content)
	if err != nil {
		return nil, []string{err.Error()}
	}
	if text != nil {
		body, m, err := normalizeMessage(*text)
		if err != nil {
			return nil, []string{err.Error()}
		}
		plan := &injectPlan{perMessage: maxRecipientsPerMessage, body: func(int) []byte { return body }}
		needDate, needID := !m.Header.Has("Date"), !m.Header.Has("Message-ID")
		if !needDate && !needID {
			return plan, nil
		}
		// RFC 5322 §3.6: Date is required and Message-ID should be there;
		// as a submission server would (RFC 6409 §8.2, §8.3), add what the
		// content lacks at the top, a fresh Message-ID for each stored
		// message. The values are well-formed: Add cannot refuse them.
		plan.body = func(int) []byte {
			one := msgheader.Message{Header: m.Header.Clone(), Body: m.Body, Sep: m.Sep}
			if needID {
				one.Header.Add("Message-ID", s.opts.messageID()) // RFC 5322 §3.6.4
			}
			if needDate {
				one.Header.Add("Date", s.opts.now().Format(time.RFC1123Z)) // RFC 5322 §3.6.1
			}
			return one.Bytes()
		}
		return plan, nil
	}
	b, problems := build(obj, req.EnvelopeSender, s.opts.boundary)
	if len(problems) > 0 {
		return nil, problems
	}
	return &injectPlan{perMessage: 1, body: func(i int) []byte {
		rc := req.Recipients[i]
		return b.message(namedAddress{Email: rc.Email, Name: rc.Name}, s.opts.now().Format(time.RFC1123Z), s.opts.messageID())
	}}, nil
}

// normalizeMessage checks that a content string is an RFC 5322 message
// (a header section, then a body) and gives it CRLF line endings, as SMTP
// reception would require. It returns the message and its parts, the
// body shared with it.
func normalizeMessage(text string) ([]byte, *msgheader.Message, error) {
	body := msgheader.CRLF([]byte(text))
	if !bytes.HasSuffix(body, []byte("\r\n")) {
		body = append(body, '\r', '\n')
	}
	m, err := msgheader.Parse(body)
	if err == nil && !m.Sep && len(m.Body) > 0 {
		// RFC 5322 §2.1: the body follows an empty line.
		line, _, _ := bytes.Cut(m.Body, []byte("\r\n"))
		err = fmt.Errorf("line %q is neither a header field nor the empty line before the body", line)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("content is not an RFC 5322 message (headers, a blank line, then the body): %v", err)
	}
	return body, m, nil
}

// ignoredFeatures lists the KumoMTA features in the request that cuemta
// does not implement, for a warning.
func (req *injectRequest) ignoredFeatures() []string {
	var out []string
	if len(req.Substitutions) > 0 {
		out = append(out, "substitutions")
	}
	for _, rc := range req.Recipients {
		if len(rc.Substitutions) > 0 {
			out = append(out, "recipients[].substitutions")
			break
		}
	}
	return out
}

// enqueueAll stores the planned messages. storageFailed reports a
// failure that was not a refusal of the message (a *RequestError).
func (s *Server) enqueueAll(ctx context.Context, req *injectRequest, plan *injectPlan, ip string) (resp *injectResponse, storageFailed bool) {
	n := len(req.Recipients)
	batches := (n + plan.perMessage - 1) / plan.perMessage
	ids := make([]string, batches)
	errs := make([]error, batches)
	msgs := make([]*Message, batches)
	type job struct {
		k int
		m *Message
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range min(injectWorkers, batches) {
		wg.Go(func() {
			for j := range jobs {
				ids[j.k], errs[j.k] = s.backend.Enqueue(ctx, j.m)
			}
		})
	}
	// Messages are built here, in recipient order, so that Message-IDs
	// follow the recipients; building is cheap next to storing.
	for k := range batches {
		first, end := k*plan.perMessage, min((k+1)*plan.perMessage, n)
		rcpts := make([]string, 0, end-first)
		for _, rc := range req.Recipients[first:end] {
			rcpts = append(rcpts, rc.Email)
		}
		dsn, rcptDSN := req.dsnOf(first, end)
		msgs[k] = &Message{
			DSN: dsn, RcptDSN: rcptDSN,
			From:       req.EnvelopeSender,
			Recipients: rcpts,
			Body:       plan.body(first),
			Tenant:     req.Tenant,
			Campaign:   req.Campaign,
			ClientIP:   ip,
		}
		jobs <- job{k, msgs[k]}
	}
	close(jobs)
	wg.Wait()

	resp = &injectResponse{FailedRecipients: []string{}, Errors: []string{}}
	for k, err := range errs {
		first, end := k*plan.perMessage, min((k+1)*plan.perMessage, n)
		if err == nil {
			// The message is stored, perhaps without some recipients.
			for i, rc := range req.Recipients[first:end] {
				if rerr, ok := msgs[k].Refused[i]; ok {
					resp.FailCount++
					resp.FailedRecipients = append(resp.FailedRecipients, rc.Email)
					resp.Errors = append(resp.Errors, rc.Email+": "+rerr.Error())
				} else {
					resp.SuccessCount++
				}
			}
			resp.IDs = append(resp.IDs, ids[k])
			continue
		}
		resp.FailCount += end - first
		for _, rc := range req.Recipients[first:end] {
			resp.FailedRecipients = append(resp.FailedRecipients, rc.Email)
			resp.Errors = append(resp.Errors, rc.Email+": "+err.Error())
		}
		var re *RequestError
		if !errors.As(err, &re) || re.temporary() {
			// Retrying may succeed: answer 503 rather than 422.
			storageFailed = true
		}
		if !errors.As(err, &re) {
			s.log.Error("cannot enqueue an injected message", "rcpts", end-first, "first_rcpt", req.Recipients[first].Email, "err", err)
		}
	}
	return resp, storageFailed
}
