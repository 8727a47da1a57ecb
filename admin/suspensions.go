package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxSuspension bounds a suspension, so that a typo ("1000h") cannot stop
// a site for months; suspend again to extend.
const maxSuspension = 30 * 24 * time.Hour

func (s *Server) handleSuspensions(w http.ResponseWriter, r *http.Request) {
	list, err := s.backend.Suspensions(r.Context())
	if err != nil {
		s.backendError(w, r, "cannot list suspensions", err)
		return
	}
	if list == nil {
		list = []Suspension{}
	}
	writeJSON(w, http.StatusOK, suspensionsResponse{Suspensions: list})
}

type suspensionsResponse struct {
	Suspensions []Suspension `json:"suspensions"`
}

type suspendRequest struct {
	Scope    string `json:"scope"`
	Key      string `json:"key"`
	Duration string `json:"duration"` // a Go duration: "90m", "1h"
	Reason   string `json:"reason"`
}

func (s *Server) handleSuspend(w http.ResponseWriter, r *http.Request) {
	var req suspendRequest
	if e := decodeJSON(w, r, s.opts.maxBodyBytes, strict, &req); e != nil {
		e.write(w)
		return
	}
	var problems []string
	if err := checkScope(req.Scope); err != nil {
		problems = append(problems, err.Error())
	}
	if err := checkKey("key", req.Key); err != nil {
		problems = append(problems, err.Error())
	}
	d, err := parseSuspension(req.Duration)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if err := checkText("reason", req.Reason); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "bad suspension: "+strings.Join(problems, "; "), problems)
		return
	}
	sus := Suspension{Scope: req.Scope, Key: req.Key, Until: s.opts.now().Add(d).UTC(), Reason: req.Reason, Origin: "admin"}
	err = s.backend.Suspend(r.Context(), sus)
	s.record(r, ActionEvent{Action: ActionSuspend, Scope: sus.Scope, Key: sus.Key, Until: sus.Until, Reason: sus.Reason, Err: err})
	if err != nil {
		s.backendError(w, r, fmt.Sprintf("cannot suspend %s %s", sus.Scope, sus.Key), err)
		return
	}
	writeJSON(w, http.StatusOK, sus)
}

func checkScope(scope string) error {
	if !slices.Contains(Scopes, scope) {
		return fmt.Errorf("scope %q is not one of %s", scope, strings.Join(Scopes, ", "))
	}
	return nil
}

func parseSuspension(v string) (time.Duration, error) {
	if v == "" {
		return 0, fmt.Errorf(`duration is missing (a Go duration such as "1h" or "90m")`)
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf(`duration %q is not a Go duration such as "1h" or "90m"`, v)
	}
	if d <= 0 || d > maxSuspension {
		return 0, fmt.Errorf("duration %s must be positive and at most %s", v, maxSuspension)
	}
	return d, nil
}

func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	scope, key := r.PathValue("scope"), r.PathValue("key")
	if err := checkScope(scope); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	if err := checkKey("key", key); err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), nil)
		return
	}
	err := s.backend.Resume(r.Context(), scope, key)
	s.record(r, ActionEvent{Action: ActionResume, Scope: scope, Key: key, Err: err})
	if err != nil {
		s.backendError(w, r, fmt.Sprintf("cannot resume %s %s", scope, key), err)
		return
	}
	writeJSON(w, http.StatusOK, actionResponse{Action: ActionResume, Scope: scope, Key: key})
}
