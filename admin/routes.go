package admin

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (s *Server) routes(registry *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/inject/v1", s.handleInject)
	mux.HandleFunc("GET /api/v1/queue", s.handleQueue)
	mux.HandleFunc("GET /api/v1/messages", s.handleMessages)
	mux.HandleFunc("POST /api/v1/messages/bulk", s.handleBulk)
	mux.HandleFunc("GET /api/v1/messages/{id}", s.handleMessage)
	mux.HandleFunc("POST /api/v1/messages/{id}/retry", s.handleRetry)
	mux.HandleFunc("POST /api/v1/messages/{id}/bounce", s.handleBounce)
	mux.HandleFunc("DELETE /api/v1/messages/{id}", s.handleDelete)
	mux.HandleFunc("GET /api/v1/suspensions", s.handleSuspensions)
	mux.HandleFunc("POST /api/v1/suspensions", s.handleSuspend)
	// {key...}: keys may contain slashes (campaign names, for one).
	mux.HandleFunc("DELETE /api/v1/suspensions/{scope}/{key...}", s.handleResume)
	mux.HandleFunc("GET /api/v1/suppressions", s.handleSuppressionList)
	mux.HandleFunc("POST /api/v1/suppressions", s.handleSuppress)
	mux.HandleFunc("DELETE /api/v1/suppressions/{address...}", s.handleUnsuppress)
	mux.HandleFunc("POST /api/v1/reload", s.handleReload)
	mux.HandleFunc("POST /api/v1/tlsrpt/send", s.handleTLSReportSend)
	mux.HandleFunc("POST /api/v1/dmarc/send", s.handleDMARCReportSend)
	mux.HandleFunc("GET /api/v1/status", s.handleStatus)
	mux.HandleFunc("GET /api/v1/console", s.handleConsole)
	mux.HandleFunc("GET /{$}", s.handlePage)
	mux.HandleFunc("GET /ui/{file}", s.handleAsset)
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	if registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{
			ErrorLog:          promLogger{s},
			ErrorHandling:     promhttp.ContinueOnError,
			Registry:          registry, // promhttp's own request counters
			EnableOpenMetrics: true,
		}))
	}
	return s.recoverPanics(s.guardBrowsers(s.authenticate(jsonErrors(mux))))
}

// jsonErrors turns the mux's plain-text 404 and 405 into JSON errors.
func jsonErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Let the mux decide between 404 and 405 (and set Allow), then
		// write our own body.
		rec := &statusRecorder{header: http.Header{}}
		mux.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			allow := rec.header.Get("Allow")
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path, "allowed: "+allow)
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			w.Header().Set("Location", rec.header.Get("Location"))
			writeError(w, rec.status, "moved", rec.header.Get("Location"))
		default:
			writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path, "see the API list in `cuemta help` or the README")
		}
	})
}

// statusRecorder keeps the status and headers of a response and drops its
// body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(status int)      { r.status = status }

// recoverPanics answers a panic in a handler with a JSON 500 and logs it,
// rather than dropping the connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("admin handler panicked", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error", nil)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// promLogger sends promhttp's errors to the server's logger.
type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) {
	l.s.log.Warn("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
