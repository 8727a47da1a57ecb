package admin

import (
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// A web page the operator happens to visit can send requests to the admin
// API on 127.0.0.1: a form or a no-cors fetch reaches the listener even
// though the page cannot read the answer (cross-site request forgery), and a
// DNS name that the attacker re-points at 127.0.0.1 makes the page
// same-origin with the API (DNS rebinding). The guard below refuses what a
// page can send and the CLI never does:
//
//   - an Origin header whose host is not loopback (browsers send Origin on
//     every cross-origin request and on all POSTs), with or without a token;
//   - without a token, a state-changing request (POST, PUT, PATCH, DELETE)
//     whose Content-Type is not application/json: the three types a page may
//     send without a CORS preflight are text/plain,
//     application/x-www-form-urlencoded and multipart/form-data, and the
//     API sends no CORS headers, so a preflight for JSON always fails;
//   - without a token, a state-changing request whose Host is not a loopback
//     name or address: a rebound page sends its own name as Host.
//
// With a token, CSRF needs the token, which a page cannot read; the Origin
// check still applies so that a page holding a leaked token cannot use it.

// isStateChanging reports whether the method may change state.
func isStateChanging(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// guardBrowsers refuses requests a web page can make; see above.
func (s *Server) guardBrowsers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && !loopbackOrigin(origin) {
			writeError(w, http.StatusForbidden, "cross-origin request refused",
				"Origin "+origin+" is not a loopback origin: the admin API is not for web pages")
			return
		}
		if s.token == nil && isStateChanging(r.Method) {
			if !loopbackHostHeader(r.Host) {
				writeError(w, http.StatusForbidden, "request refused: Host is not a loopback name or address",
					"Host "+r.Host+": without admin.token the API answers only requests addressed to localhost, 127.0.0.1 or [::1] (DNS rebinding)")
				return
			}
			if !isJSON(r.Header.Get("Content-Type")) {
				ct := r.Header.Get("Content-Type")
				if ct == "" {
					ct = "none"
				}
				writeError(w, http.StatusUnsupportedMediaType, "request refused: Content-Type must be application/json",
					"got "+ct+": a state-changing request needs Content-Type: application/json (a web form cannot send it)")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// isJSON reports whether a Content-Type is application/json, parameters
// such as charset allowed.
func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// loopbackHostHeader reports whether a Host header (host or host:port) is
// localhost, an address in 127.0.0.0/8 or [::1].
func loopbackHostHeader(h string) bool {
	if h == "" {
		return false
	}
	host := h
	if hp, _, err := net.SplitHostPort(h); err == nil {
		host = hp
	} else if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		host = h[1 : len(h)-1]
	}
	return loopbackName(host)
}

// loopbackName reports whether host (no port, no brackets) is loopback.
func loopbackName(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Unmap().IsLoopback()
}

// loopbackOrigin reports whether an Origin header names a loopback host.
// "null" (sandboxed frames, file: pages) is not loopback.
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return loopbackName(u.Hostname())
}
