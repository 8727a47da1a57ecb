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

// authenticate requires "Authorization: Bearer TOKEN" on every request
// when a token is configured, health checks and metrics included.
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.token == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, presented, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") ||
			subtle.ConstantTimeCompare(hashToken(strings.TrimSpace(presented)), s.token) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="cuemta"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token", "send Authorization: Bearer <admin.token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}
