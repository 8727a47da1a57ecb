package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// groupings accepted by GET /api/v1/queue?by=.
var groupings = []string{"site", "pool", "tenant"}

func (s *Server) handleQueue(w http.ResponseWriter, r *http.Request) {
	by := r.URL.Query().Get("by")
	if by == "" {
		by = "site"
	}
	if !slices.Contains(groupings, by) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad grouping %q", by), "by must be one of: "+strings.Join(groupings, ", "))
		return
	}
	groups, err := s.backend.Queue(r.Context(), by)
	if err != nil {
		s.backendError(w, r, "cannot list the queue", err)
		return
	}
	if groups == nil {
		groups = []QueueGroup{}
	}
	writeJSON(w, http.StatusOK, queueResponse{By: by, Groups: groups})
}

type queueResponse struct {
	By     string       `json:"by"`
	Groups []QueueGroup `json:"groups"`
}

// messageID returns the {id} path value, or answers 400.
func messageID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if err := checkKey("message id", id); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return "", false
	}
	return id, true
}

// checkKey validates an id or suspension key from a path or body: short,
// printable, no control characters (they end up in logs).
func checkKey(what, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(v) > 255 {
		return fmt.Errorf("%s is longer than 255 bytes", what)
	}
	for _, c := range v {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("%s %q contains a control character", what, v)
		}
	}
	return nil
}

func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	info, err := s.backend.Message(r.Context(), id)
	if err != nil {
		s.backendError(w, r, "message "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// actionResponse is the body of a successful message or suspension action.
type actionResponse struct {
	Action string `json:"action"`
	ID     string `json:"id,omitempty"`
	Scope  string `json:"scope,omitempty"`
	Key    string `json:"key,omitempty"`
}

func (s *Server) handleRetry(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	err := s.backend.Retry(r.Context(), id)
	s.record(r, ActionEvent{Action: ActionRetry, MessageID: id, Err: err})
	if err != nil {
		s.backendError(w, r, "cannot retry message "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, actionResponse{Action: ActionRetry, ID: id})
}

type bounceRequest struct {
	Reason string `json:"reason"`
}

// defaultBounceReason is used when the operator gives none.
const defaultBounceReason = "bounced by the administrator"

func (s *Server) handleBounce(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	var req bounceRequest
	if e := decodeJSON(w, r, s.opts.maxBodyBytes, strict|optional, &req); e != nil {
		e.write(w)
		return
	}
	if err := checkText("reason", req.Reason); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	if req.Reason == "" {
		req.Reason = defaultBounceReason
	}
	err := s.backend.Bounce(r.Context(), id, req.Reason)
	s.record(r, ActionEvent{Action: ActionBounce, MessageID: id, Reason: req.Reason, Err: err})
	if err != nil {
		s.backendError(w, r, "cannot bounce message "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, actionResponse{Action: ActionBounce, ID: id})
}

// checkText validates free text that ends up in bounces and logs: one
// line, bounded.
func checkText(what, v string) error {
	if len(v) > 1000 {
		return fmt.Errorf("%s is longer than 1000 bytes", what)
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("%s must be a single line", what)
	}
	return nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := messageID(w, r)
	if !ok {
		return
	}
	err := s.backend.Delete(r.Context(), id)
	s.record(r, ActionEvent{Action: ActionDelete, MessageID: id, Err: err})
	if err != nil {
		s.backendError(w, r, "cannot delete message "+id, err)
		return
	}
	writeJSON(w, http.StatusOK, actionResponse{Action: ActionDelete, ID: id})
}
