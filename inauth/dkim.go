package inauth

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// DKIMResult is the outcome of one DKIM-Signature (RFC 6376 §6.1).
type DKIMResult struct {
	Result     string // pass, fail, neutral, temperror, permerror, policy
	Domain     string // the signature's d= (SDID)
	Selector   string // s=
	Identifier string // i= (AUID)
	Reason     string
}

// verifyDKIM checks up to max signatures with go-msgauth on our resolver.
// Signatures past max are reported as "policy" (RFC 8601 §2.7.1), so a
// message cannot make us verify without end.
func verifyDKIM(ctx context.Context, r *budgeted, msg []byte, max int) []DKIMResult {
	lookup := func(name string) ([]string, error) { return r.LookupTXT(ctx, name) }
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup, MaxVerifications: max})
	sigs := signatureTags(msg)
	if len(sigs) > MaxReported {
		sigs = sigs[:MaxReported]
	}
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// A header go-msgauth could not read, or a failure it reports
		// for the whole message: no signature can be relied on.
		out := make([]DKIMResult, len(sigs))
		for i, s := range sigs {
			out[i] = DKIMResult{Result: ResultPermError, Domain: s.domain, Selector: s.selector, Reason: err.Error()}
		}
		return out
	}
	out := make([]DKIMResult, 0, len(vs))
	for i, v := range vs {
		d := DKIMResult{Domain: strings.ToLower(v.Domain), Identifier: v.Identifier, Result: ResultPass}
		if i < len(sigs) {
			d.Selector = sigs[i].selector
		}
		switch {
		case v.Err == nil:
		case dkim.IsTempFail(v.Err):
			d.Result, d.Reason = ResultTempError, v.Err.Error()
		case dkim.IsPermFail(v.Err):
			d.Result, d.Reason = ResultPermError, v.Err.Error()
		default:
			d.Result, d.Reason = ResultFail, v.Err.Error()
		}
		out = append(out, d)
	}
	for i := len(vs); errors.Is(err, dkim.ErrTooManySignatures) && i < len(sigs) && len(out) < MaxReported; i++ {
		out = append(out, DKIMResult{Result: ResultPolicy, Domain: sigs[i].domain, Selector: sigs[i].selector,
			Reason: "more signatures than verify.maxSignatures"})
	}
	return out
}

// MaxReported bounds the signatures reported for one message, verified
// or not, so rules that iterate over them have a bounded cost.
const MaxReported = 100

type sigTags struct{ domain, selector string }

// signatureTags returns the d= and s= tags of each DKIM-Signature field,
// in header order: go-msgauth verifies them in that order but does not
// report s=.
func signatureTags(msg []byte) []sigTags {
	m, _ := msgheader.Parse(msg)
	var out []sigTags
	for _, v := range m.Header.Values("DKIM-Signature") {
		out = append(out, sigTags{domain: strings.ToLower(tagValue(v, "d")), selector: tagValue(v, "s")})
	}
	return out
}

// tagValue returns a tag's value in a tag-list (RFC 6376 §3.2), white
// space removed.
func tagValue(list, tag string) string {
	for _, kv := range strings.Split(list, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == tag {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}
