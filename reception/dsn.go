package reception

import (
	"strings"
	"unicode"

	"github.com/cuemta/cuemta/internal/dsnparams"
	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
)

// RFC 3461 §4.4 and §4.2 bound the parameters' length.
const (
	maxEnvID = 100
	maxORCPT = 500
)

// The replies for malformed DSN parameters: RFC 5321 §4.5.3.1 501 (syntax
// error in parameters), RFC 3463 X.5.4 (invalid command arguments). The
// smtpd fork answers the malformed xtext, keywords and types itself, with
// the same reply.
var (
	errBadEnvID = newReply(501, "5.5.4", "Malformed ENVID parameter value (RFC 3461 §4.4)")
	errBadORCPT = newReply(501, "5.5.4", "Malformed ORCPT parameter value (RFC 3461 §4.2)")
)

// mailDSN checks and keeps MAIL FROM's DSN parameters. The fork has
// decoded the xtext and refused bad syntax; the length limit and the
// characters of the decoded value are checked here.
func mailDSN(opts *smtp.MailOptions) (dsnparams.Mail, error) {
	if opts == nil {
		return dsnparams.Mail{}, nil
	}
	// RFC 3461 §4.4: ENVID is at most 100 characters; its decoded form
	// (which is never longer) is echoed in the DSN's header fields, so no
	// control character may be in it.
	if len(opts.EnvelopeID) > maxEnvID || strings.ContainsFunc(opts.EnvelopeID, unicode.IsControl) {
		return dsnparams.Mail{}, errBadEnvID
	}
	return dsnparams.Mail{Ret: string(opts.Return), EnvID: opts.EnvelopeID}, nil
}

// rcptDSN checks and keeps one RCPT TO's DSN parameters.
func rcptDSN(opts *smtp.RcptOptions) (dsnparams.Rcpt, error) {
	if opts == nil {
		return dsnparams.Rcpt{}, nil
	}
	var d dsnparams.Rcpt
	for _, n := range opts.Notify {
		d.Notify = append(d.Notify, string(n))
	}
	if opts.OriginalRecipient != "" {
		a := opts.OriginalRecipient
		// RFC 3461 §4.2: at most 500 characters; the address goes into a
		// DSN field (Original-Recipient), so no control characters.
		if len(a) > maxORCPT || strings.ContainsFunc(a, unicode.IsControl) {
			return dsnparams.Rcpt{}, errBadORCPT
		}
		d.ORCPT = strings.ToLower(string(opts.OriginalRecipientType)) + ";" + a
	}
	return d, nil
}
