package admin

import (
	"context"
	"net/http"

	"github.com/cuemta/cuemta/dmarcreport"
)

// DMARCReports is what the DMARC reporting endpoint needs: send every
// pending aggregate report now (dmarcreport.Reporter.SendNow).
type DMARCReports interface {
	SendNow(ctx context.Context) []dmarcreport.Sent
}

// WithDMARCReports serves POST /api/v1/dmarc/send on reports; without it
// (DMARC reporting off) the endpoint answers 404.
func WithDMARCReports(reports DMARCReports) Option {
	return func(o *options) { o.dmarcReports = reports }
}

// DMARCReportsResponse is the answer of POST /api/v1/dmarc/send: one
// entry per report, in the order they were sent.
type DMARCReportsResponse struct {
	Reports []dmarcreport.Sent `json:"reports"`
}

// handleDMARCReportSend closes the current day's counts and sends every
// pending aggregate report now, without waiting for the day to end.
func (s *Server) handleDMARCReportSend(w http.ResponseWriter, r *http.Request) {
	if s.opts.dmarcReports == nil {
		writeError(w, http.StatusNotFound, "DMARC reporting is off (dmarcReporting.enabled)", nil)
		return
	}
	sent := s.opts.dmarcReports.SendNow(r.Context())
	if sent == nil {
		sent = []dmarcreport.Sent{}
	}
	writeJSON(w, http.StatusOK, DMARCReportsResponse{Reports: sent})
}
