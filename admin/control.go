package admin

import (
	"fmt"
	"net/http"
)

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	res, err := s.backend.Reload(r.Context())
	if err == nil && res == nil {
		err = fmt.Errorf("backend returned no reload result")
	}
	ev := ActionEvent{Action: ActionReload, Err: err}
	if res != nil {
		ev.Generation = res.Generation
		if !res.OK && err == nil {
			ev.Err = fmt.Errorf("configuration refused: %d errors", len(res.Errors))
		}
	}
	s.record(r, ev)
	switch {
	case err != nil:
		s.backendError(w, r, "reload failed", err)
	case !res.OK:
		detail := *res
		if detail.Errors == nil {
			detail.Errors = []string{}
		}
		writeError(w, http.StatusUnprocessableEntity,
			fmt.Sprintf("configuration refused (%d errors); generation %d stays in force", len(detail.Errors), detail.Generation), detail)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err == nil && st == nil {
		err = fmt.Errorf("backend returned no status")
	}
	if err != nil {
		s.backendError(w, r, "cannot get the status", err)
		return
	}
	out := *st // the backend may share *st: don't write to it
	out.Ready = s.backend.Ready()
	if out.Listeners == nil {
		out.Listeners = []ListenerStatus{}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleHealthz answers while the process serves HTTP: liveness.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// handleReadyz answers 200 only when the backend accepts mail: readiness.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if !s.backend.Ready() {
		msg, detail := "not ready", "the spool or the listeners are not up yet, or the server is shutting down"
		if nr, ok := s.backend.(NotReadyReasoner); ok {
			if reason, d := nr.NotReadyReason(); reason != "" {
				msg, detail = "not ready: "+reason, d
			}
		}
		writeError(w, http.StatusServiceUnavailable, msg, detail)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if d, ok := s.backend.(DegradedReasoner); ok {
		if reason, detail := d.Degraded(); reason != "" {
			// Still 200: the node takes and delivers mail, within its share.
			w.Header().Set("X-Cuemta-Degraded", reason)
			fmt.Fprintf(w, "ready, degraded: %s\n%s\n", reason, detail)
			return
		}
	}
	fmt.Fprintln(w, "ready")
}
