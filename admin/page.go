package admin

import (
	"crypto/subtle"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// The status page is server-rendered HTML (ui/index.html) that a small
// script (ui/console.js) refreshes from GET /api/v1/console; everything it
// loads is embedded here, so it works without network access and sends no
// request anywhere but this listener. GET of the page, its assets and its
// JSON is read-only. Its actions (resume a suspension, retry a site's mail)
// are ordinary API calls that the script sends with the operator's token
// and Content-Type application/json, so the defences of csrf.go apply to
// them unchanged.
//
// Without the token the page and its JSON answer only on a loopback
// listener (openProbe), and only to requests addressed to a loopback Host:
// a rebound DNS name cannot make a web page same-origin with the console
// and read the queue's addresses.

//go:embed ui
var uiFiles embed.FS

var pageTemplate = template.Must(template.New("index.html").Funcs(template.FuncMap{
	"age":  func(s int64) string { return ageText(time.Duration(s) * time.Second) },
	"rate": func(v float64) string { return rateText(v) },
	"left": func(until, now time.Time) string { return ageText(until.Sub(now)) },
	"utc":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}).ParseFS(uiFiles, "ui/index.html"))

// pageData is what the template renders.
type pageData struct {
	*Console
	Rates Totals // per second over the last minute
}

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	if !s.pageAllowed(w, r) {
		return
	}
	c, err := s.backend.Console(r.Context())
	if err != nil {
		s.backendError(w, r, "cannot describe the delivery", err)
		return
	}
	d := pageData{Console: c, Rates: LastMinute(c.Throughput)}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	// Only this listener's own script and styles; no inline script, no
	// frames, no form posts anywhere.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("Cache-Control", "no-store")
	if err := pageTemplate.Execute(w, d); err != nil {
		s.log.Warn("status page not rendered", "err", err)
	}
}

func (s *Server) handleAsset(w http.ResponseWriter, r *http.Request) {
	if !s.pageAllowed(w, r) {
		return
	}
	name := r.PathValue("file")
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	ct, ok := types[path.Ext(name)]
	data, err := uiFiles.ReadFile("ui/" + name)
	if !ok || err != nil || strings.Contains(name, "/") {
		writeError(w, http.StatusNotFound, "no such file: "+r.URL.Path, nil)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(data)
}

// pageAllowed refuses a console read without the token whose Host is not
// loopback (see the top of this file), answering 403.
func (s *Server) pageAllowed(w http.ResponseWriter, r *http.Request) bool {
	if s.token != nil && s.validToken(r) {
		return true
	}
	if loopbackHostHeader(r.Host) {
		return true
	}
	writeError(w, http.StatusForbidden, "request refused: Host is not a loopback name or address",
		"Host "+r.Host+": without the token the console answers only requests addressed to localhost, 127.0.0.1 or [::1] (DNS rebinding)")
	return false
}

// validToken reports whether the request carries the configured token.
func (s *Server) validToken(r *http.Request) bool {
	scheme, presented, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") &&
		subtle.ConstantTimeCompare(hashToken(strings.TrimSpace(presented)), s.token) == 1
}

// LastMinute is the mean per-second rate of the last 60 seconds of a
// throughput series (fewer when the process is younger).
func LastMinute(t Throughput) Totals {
	mean := func(v []float64) float64 {
		n := min(60, len(v))
		if n == 0 {
			return 0
		}
		sum := 0.0
		for _, x := range v[len(v)-n:] {
			sum += x
		}
		return sum / float64(n)
	}
	return Totals{Received: mean(t.Received), Delivered: mean(t.Delivered), Deferred: mean(t.Deferred), Bounced: mean(t.Bounced)}
}

// rateText formats a per-second rate with two decimals, as the script
// does (console.js rate): the page's numbers are the same either way.
func rateText(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// ageText formats a duration for people, as the script does (console.js
// age): 45s, 12m, 3h5m, 2d4h.
func ageText(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm", s/60)
	case s < 48*3600:
		if m := s / 60 % 60; m != 0 {
			return fmt.Sprintf("%dh%dm", s/3600, m)
		}
		return fmt.Sprintf("%dh", s/3600)
	default:
		if h := s / 3600 % 24; h != 0 {
			return fmt.Sprintf("%dd%dh", s/86400, h)
		}
		return fmt.Sprintf("%dd", s/86400)
	}
}
