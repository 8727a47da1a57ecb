package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
)

// hashToken hashes the token so that the comparison below takes the same
// time whatever the length of the presented token.
func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// openProbe reports whether a request may be answered without the token:
// GET /healthz and /readyz always (Kubernetes probes cannot send a token,
// and they tell only up or ready), GET /metrics when the admin listener is
// on loopback (only local processes reach it).
func (s *Server) openProbe(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	switch r.URL.Path {
	case "/healthz", "/readyz":
		return true
	case "/metrics", "/", "/api/v1/console":
		// The status page and its JSON are read-only (page.go).
		return s.loopback.Load()
	}
	if strings.HasPrefix(r.URL.Path, "/ui/") {
		return s.loopback.Load()
	}
	return false
}

// authenticate requires "Authorization: Bearer TOKEN" on every request
// when a token is configured, except the probes of openProbe.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.token == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, presented, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") ||
			subtle.ConstantTimeCompare(hashToken(strings.TrimSpace(presented)), s.token) != 1 {
			if s.openProbe(r) {
				if r.URL.Path == "/readyz" && !s.loopback.Load() {
					s.bareReadyz(w)
					return
				}
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="cuemta"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token", "send Authorization: Bearer <admin.token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bareReadyz answers /readyz without the reason, for a caller without the
// token on a listener other hosts can reach.
func (s *Server) bareReadyz(w http.ResponseWriter) {
	if !s.backend.Ready() {
		writeError(w, http.StatusServiceUnavailable, "not ready", nil)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if d, ok := s.backend.(DegradedReasoner); ok {
		if reason, _ := d.Degraded(); reason != "" {
			_, _ = w.Write([]byte("ready, degraded\n"))
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}
