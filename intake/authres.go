package intake

import (
	"context"
	"net/netip"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/inauth"
	"github.com/cuemta/cuemta/internal/msgheader"
	"github.com/cuemta/cuemta/reception"
	"github.com/cuemta/cuemta/rules"
)

// Verification is a message's inbound verification, computed before
// Prepare (it queries DNS) and applied by it.
type Verification struct {
	Results *inauth.Results
	// AuthservID names this host in Authentication-Results.
	AuthservID string
}

// verify runs the listener's checks (listeners.*.verify) on mail from
// outside: a client neither in relay.networks nor authenticated. nil when
// nothing is to be verified.
func verify(ctx context.Context, r inauth.Resolver, cfg *config.Config, sub *reception.Submission) *Verification {
	l := cfg.Listeners[sub.Listener]
	if r == nil || l == nil || !l.Verify.Any() || sub.FromNetwork || sub.User != "" {
		return nil
	}
	ip, err := netip.ParseAddr(sub.ClientIP)
	if err != nil {
		return nil
	}
	v := l.Verify
	res := inauth.Verify(ctx, r, inauth.Options{
		Checks:        inauth.Checks{SPF: v.SPF, DKIM: v.DKIM, DMARC: v.DMARC, ARC: v.ARC},
		MaxSignatures: v.MaxSignatures, MaxQueries: v.MaxQueries, Timeout: v.Timeout.D(),
	}, inauth.Input{ClientIP: ip, Helo: sub.Helo, From: sub.From, Message: sub.Body})
	id := v.AuthservID
	if id == "" {
		id = cfg.Hostname
	}
	return &Verification{Results: res, AuthservID: id}
}

// applyVerification removes the Authentication-Results fields that claim
// our authserv-id (RFC 8601 §5) and puts ours at the top of the header.
// It reports whether the header changed.
func applyVerification(h *msgheader.Header, v *Verification) (bool, error) {
	if v == nil {
		return false, nil
	}
	inauth.RemoveForged(h, v.AuthservID)
	if err := h.AddRaw(v.Results.Field(v.AuthservID)); err != nil {
		return false, err
	}
	return true, nil
}

// authInput is the verification as message rules see it.
func authInput(v *Verification) *rules.AuthInput {
	if v == nil {
		return nil
	}
	r := v.Results
	in := &rules.AuthInput{
		SPF:        rules.AuthSPF{Result: r.SPF.Result, Domain: r.SPF.Domain, Scope: r.SPF.Scope},
		DMARC:      rules.AuthDMARC{Result: r.DMARC.Result, Policy: r.DMARC.Policy, Disposition: r.DMARC.Disposition, Domain: r.DMARC.Domain},
		DKIMResult: r.DKIMSummary(),
	}
	if r.Checks.ARC {
		in.ARC = rules.AuthARC{Result: r.ARC.Result, Sealer: r.ARC.Sealer(), Instances: r.ARC.Instances}
	}
	for _, d := range r.DKIM {
		in.DKIM = append(in.DKIM, rules.AuthDKIM{Result: d.Result, Domain: d.Domain, Selector: d.Selector})
	}
	return in
}
