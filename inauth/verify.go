package inauth

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/cuemta/cuemta/internal/msgheader"
)

// Checks says which verifications run.
type Checks struct {
	SPF, DKIM, DMARC, ARC bool
}

// Options bound one message's verification.
type Options struct {
	Checks
	// MaxSignatures is how many DKIM signatures are verified; more are
	// reported as "policy". 0: 5.
	MaxSignatures int
	// MaxQueries bounds the DNS queries of one message, SPF, DKIM and
	// DMARC together. 0: 40 (SPF's own limit of 10 mechanisms can cost
	// about 20 queries with their a and mx lookups).
	MaxQueries int
	// Timeout bounds the whole verification. 0: 10s.
	Timeout time.Duration
	// Sample reports whether a message falls within a DMARC pct= (0-99);
	// nil: at random.
	Sample func(pct int) bool
}

// Input is what verification reads of a message.
type Input struct {
	ClientIP netip.Addr
	Helo     string
	From     string // MAIL FROM, "" for the null sender
	Message  []byte // the whole message, CRLF line endings
}

// Results is the outcome of verification. A check that did not run has
// its zero value (Result "").
type Results struct {
	SPF   SPFResult
	DKIM  []DKIMResult
	DMARC DMARCResult
	ARC   ARCResult
	Checks
}

// Verify runs the checks of opts on one message with r. It never fails:
// what cannot be decided is a temperror or permerror in the results.
func Verify(ctx context.Context, r Resolver, opts Options, in Input) *Results {
	if opts.MaxSignatures <= 0 {
		opts.MaxSignatures = 5
	}
	if opts.MaxQueries <= 0 {
		opts.MaxQueries = 40
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Sample == nil {
		opts.Sample = func(pct int) bool { return rand.IntN(100) < pct }
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	b := newBudgeted(r, opts.MaxQueries)
	res := &Results{Checks: opts.Checks}
	if opts.SPF || opts.DMARC {
		// DMARC needs SPF's result; it is reported only when asked for.
		res.SPF = checkSPF(ctx, b, in.ClientIP, in.Helo, in.From)
	}
	if opts.DKIM || opts.DMARC {
		res.DKIM = verifyDKIM(ctx, b, in.Message, opts.MaxSignatures)
	}
	if opts.DMARC {
		m, _ := msgheader.Parse(in.Message)
		res.DMARC = evalDMARC(ctx, b, m.Header.Values("From"), res.SPF, res.DKIM, opts.Sample)
	}
	if opts.ARC {
		res.ARC = verifyARC(ctx, b, in.Message)
	}
	if !opts.SPF {
		res.SPF = SPFResult{}
	}
	if !opts.DKIM {
		res.DKIM = nil
	}
	return res
}

// DKIMSummary is one word for all the signatures: pass when one passed,
// else the first signature's result, none without signatures; "" when
// DKIM was not verified.
func (r *Results) DKIMSummary() string {
	if r == nil || !r.Checks.DKIM {
		return ""
	}
	if len(r.DKIM) == 0 {
		return ResultNone
	}
	for _, d := range r.DKIM {
		if d.Result == ResultPass {
			return ResultPass
		}
	}
	return r.DKIM[0].Result
}
