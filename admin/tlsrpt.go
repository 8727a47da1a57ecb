package admin

import (
	"context"
	"net/http"

	"github.com/cuemta/cuemta/tlsrpt"
)

// TLSReports is what the TLS reporting endpoint needs: send every pending
// report now (tlsrpt.Reporter.SendNow).
type TLSReports interface {
	SendNow(ctx context.Context) []tlsrpt.Sent
}

// WithTLSReports serves POST /api/v1/tlsrpt/send on reports; without it
// (TLS reporting off) the endpoint answers 404.
func WithTLSReports(reports TLSReports) Option {
	return func(o *options) { o.tlsReports = reports }
}

// TLSReportsResponse is the answer of POST /api/v1/tlsrpt/send: one entry
// per report, in the order they were sent.
type TLSReportsResponse struct {
	Reports []tlsrpt.Sent `json:"reports"`
}

// handleTLSReportSend closes the current day's counts and sends every
// pending report now, without waiting for the day to end.
func (s *Server) handleTLSReportSend(w http.ResponseWriter, r *http.Request) {
	if s.opts.tlsReports == nil {
		writeError(w, http.StatusNotFound, "TLS reporting is off (tlsReporting.enabled)", nil)
		return
	}
	sent := s.opts.tlsReports.SendNow(r.Context())
	if sent == nil {
		sent = []tlsrpt.Sent{}
	}
	writeJSON(w, http.StatusOK, TLSReportsResponse{Reports: sent})
}
