package rules

import (
	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// Variables of message rules for the verification of inbound mail
// (package inauth). Each map always holds every key below, "" when the
// check did not run (the listener does not verify, or the client is in
// relay.networks or authenticated), so a rule never meets a missing key.
const (
	varSPF   = "spf"   // {result, domain, scope}
	varDKIM  = "dkim"  // [{result, domain, selector}], one per signature
	varDMARC = "dmarc" // {result, policy, disposition, domain}
	varARC   = "arc"   // {result, sealer}
	varAuth  = "auth"  // {spf, dkim, dmarc, arc}: one result word each
)

// AuthInput is the verification of a message as message rules see it.
// nil: not verified.
type AuthInput struct {
	SPF   AuthSPF
	DKIM  []AuthDKIM
	DMARC AuthDMARC
	// DKIMResult is one word for all signatures (auth.dkim).
	DKIMResult string
	// ARC is the chain of the hosts that forwarded the message; zero when
	// it was not checked.
	ARC AuthARC
}

// AuthARC is an ARC chain's validation (RFC 8617): Result pass, fail or
// none; Sealer the newest sealer's domain when it passed; Instances the
// length of the chain.
type AuthARC struct {
	Result, Sealer string
	Instances      int
}

type AuthSPF struct{ Result, Domain, Scope string }

type AuthDKIM struct{ Result, Domain, Selector string }

type AuthDMARC struct{ Result, Policy, Disposition, Domain string }

// DKIMSummary is auth.dkim for a verified message's signatures: pass when
// one passed, else the first one's result, none without signatures.
func DKIMSummary(sigs []AuthDKIM) string {
	if len(sigs) == 0 {
		return "none"
	}
	for _, d := range sigs {
		if d.Result == "pass" {
			return "pass"
		}
	}
	return sigs[0].Result
}

func authEnvOptions() []cel.EnvOption {
	str := cel.MapType(cel.StringType, cel.StringType)
	return []cel.EnvOption{
		cel.Variable(varSPF, str),
		cel.Variable(varDKIM, cel.ListType(str)),
		cel.Variable(varDMARC, str),
		cel.Variable(varARC, str),
		cel.Variable(varAuth, str),
	}
}

func stringMap(m map[string]string) ref.Val {
	return types.NewStringStringMap(types.DefaultTypeAdapter, m)
}

func (a *AuthInput) spfVal() ref.Val {
	var s AuthSPF
	if a != nil {
		s = a.SPF
	}
	return stringMap(map[string]string{"result": s.Result, "domain": s.Domain, "scope": s.Scope})
}

func (a *AuthInput) dkimVal() ref.Val {
	var vals []ref.Val
	if a != nil {
		for _, d := range a.DKIM {
			vals = append(vals, stringMap(map[string]string{"result": d.Result, "domain": d.Domain, "selector": d.Selector}))
		}
	}
	return types.NewRefValList(types.DefaultTypeAdapter, vals)
}

func (a *AuthInput) dmarcVal() ref.Val {
	var d AuthDMARC
	if a != nil {
		d = a.DMARC
	}
	return stringMap(map[string]string{"result": d.Result, "policy": d.Policy, "disposition": d.Disposition, "domain": d.Domain})
}

func (a *AuthInput) arcVal() ref.Val {
	var r AuthARC
	if a != nil {
		r = a.ARC
	}
	return stringMap(map[string]string{"result": r.Result, "sealer": r.Sealer})
}

func (a *AuthInput) authVal() ref.Val {
	if a == nil {
		return stringMap(map[string]string{"spf": "", "dkim": "", "dmarc": "", "arc": ""})
	}
	return stringMap(map[string]string{"spf": a.SPF.Result, "dkim": a.DKIMResult, "dmarc": a.DMARC.Result, "arc": a.ARC.Result})
}
