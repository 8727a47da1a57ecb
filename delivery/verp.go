package delivery

import "github.com/cuemta/cuemta/internal/verp"

// mailFrom is the MAIL FROM of a job: the envelope sender, or with
// feedback.verp its VERP form bounce+<queue id>@<feedback domain>, so that
// an asynchronous bounce names the message it answers (RFC 5321 §4.1.2:
// "bounce+" and a base32hex queue id make a dot-atom local part). The
// null sender stays <>: a DSN or other notification must not draw one
// back (RFC 5321 §4.5.5).
func mailFrom(j *job) string {
	from := j.att.env.From
	if from == "" {
		return ""
	}
	// The attempt's own policy, as every other decision of the attempt.
	pol := j.att.policy
	if pol == nil || pol.Config == nil {
		return from
	}
	if d := pol.Config.VERPDomain(); d != "" {
		return verp.Address(j.att.env.ID, d)
	}
	return from
}
