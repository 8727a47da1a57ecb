package rules

import (
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/smtpclient"
)

// Run-time cost tracking roughly triples the cost of an evaluation, so it
// is enabled only for rules that could exceed the cost limit: rules with a
// comprehension (all, exists, map, ...) whose worst case, estimated
// statically from the bounds below, is above the limit. Without a
// comprehension a rule's work is linear in its inputs, which reception and
// the SMTP client already bound.

// sizeHints bounds the variables' sizes (in elements, or code points for
// strings) for the static cost estimate.
type sizeHints map[string]cost.SizeEstimate

func newSizeHints(cfg *config.Config) sizeHints {
	maxRcpt := uint64(0)
	maxSize := uint64(0)
	for _, l := range cfg.Listeners {
		if l == nil {
			continue
		}
		maxRcpt = max(maxRcpt, uint64(l.Limits.MaxRecipients))
		maxSize = max(maxSize, uint64(l.Limits.MaxMessageSize))
	}
	if maxRcpt == 0 {
		maxRcpt = 1000 // the schema's default
	}
	if maxSize == 0 {
		maxSize = 52428800
	}
	upTo := func(n uint64) cost.SizeEstimate { return cost.SizeEstimate{Min: 0, Max: n} }
	return sizeHints{
		// RFC 5321 §4.5.3.1: paths up to 256 octets, domains up to 255.
		varSender:                       upTo(256),
		varSenderDomain:                 upTo(255),
		varRecipients:                   upTo(maxRcpt),
		varRecipients + ".@items":       upTo(256),
		varRecipientDomains:             upTo(maxRcpt),
		varRecipientDomains + ".@items": upTo(255),
		// A header section can be as large as the message.
		varHeaders:              upTo(maxSize / 4),
		varHeaders + ".@keys":   upTo(998),
		varHeaders + ".@values": upTo(maxSize),
		varListener:             upTo(63),
		varClientIP:             upTo(45),
		varUser:                 upTo(998),
		varTenant:               upTo(998),
		varCampaign:             upTo(998),
		// Verification: domains, selectors and result words; at most 100
		// signatures reported (inauth.MaxReported).
		varDKIM:                     upTo(100),
		varDKIM + ".@items":         upTo(3),
		varSPF + ".@values":         upTo(255),
		varDMARC + ".@values":       upTo(255),
		varDKIM + ".@items.@values": upTo(255),
		varTags:                     upTo(64),
		varTags + ".@items":         upTo(255),
		varHelo:                     upTo(255),
		varClientName:               upTo(255),
		varRecipient:                upTo(256),
		varRecipientDomain:          upTo(255),
		// Replies: RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets;
		// the SMTP client reads up to smtpclient.MaxReplyLines lines of
		// smtpclient.MaxLineLen bytes, and reply.text is those lines joined
		// with a space.
		varReply + ".text":         upTo(smtpclient.MaxReplyLines * smtpclient.MaxLineLen),
		varReply + ".lines":        upTo(smtpclient.MaxReplyLines),
		varReply + ".lines.@items": upTo(smtpclient.MaxLineLen),
		varReply + ".enhanced":     upTo(16),
		varReply + ".stage":        upTo(16),
		varSite:                    upTo(255),
		varMX:                      upTo(255),
		varDomain:                  upTo(255),
		varProfile:                 upTo(63),
		varSource:                  upTo(63),
		varPool:                    upTo(63),
		varRecent:                  upTo(codeDomain + 3),
		varRecent + ".@keys":       upTo(3),
	}
}

func (h sizeHints) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	if p := n.Path(); len(p) > 0 {
		if s, ok := h[strings.Join(p, ".")]; ok {
			return &s
		}
	}
	return nil
}

func (h sizeHints) EstimateCallCost(function, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	return nil
}

// needsCostLimit reports whether a rule must be cost-tracked at run time.
func needsCostLimit(env *cel.Env, a *cel.Ast, hints sizeHints, limit uint64) bool {
	nav := celast.NavigateAST(a.NativeRep())
	if len(celast.MatchDescendants(nav, celast.KindMatcher(celast.ComprehensionKind))) == 0 {
		return false
	}
	est, err := env.EstimateCost(a, hints)
	return err != nil || est.Max > limit
}
