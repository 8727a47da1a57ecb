package rules

import (
	"strings"
	"sync"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"

	"github.com/cuemta/cuemta/config"
)

// MessageInput is what message rules see of a message at reception.
type MessageInput struct {
	Sender     string // "" for the null sender
	Recipients []string
	// Headers maps a header name (any case) to the value of its first
	// occurrence; see HeadersFromMIME.
	Headers  map[string]string
	Size     int64
	Listener string
	ClientIP string
	User     string // authenticated user, if any
	Tenant   string
	Campaign string
	// Auth is the verification of inbound mail; nil: not verified.
	Auth *AuthInput
	// Tags are those the stage rules added (rules.connect ... rcpt).
	Tags []string
}

// Header is one header field to add.
type Header struct {
	Name, Value string
}

// MessageDecision is the outcome of the message rules for one message.
type MessageDecision struct {
	Pool     string // the chosen egress pool; delivery.defaultPool if no rule chose one
	Route    string // static next hop, "" for MX delivery
	Tenant   string
	Campaign string
	Priority int // 0-9, default 5
	// DKIM is the keys the last rule that set dkim named, in order; "none"
	// (KeyList.None) not to sign; nil when no rule chose, and the keys
	// are chosen by domain (dkim.SigningTable).
	DKIM config.KeyList
	// AddHeaders in the order rules added them (within a rule, by name).
	AddHeaders    []Header
	RemoveHeaders []string
	// Reject is set when a rule refused the message.
	Reject *config.Reject
	// Matched names the rules whose condition held, in order.
	Matched []string
	// Errors describes rules that failed at run time (treated as not matching).
	Errors []string
}

// Accepted reports whether no rule rejected the message.
func (d *MessageDecision) Accepted() bool { return d.Reject == nil }

// DefaultPriority is a message's priority when no rule sets one.
const DefaultPriority = 5

type messageRule struct {
	rule
	cfg        *config.MessageRule
	addHeaders []Header
}

// HeadersFromMIME converts a parsed header (net/mail.Header,
// textproto.MIMEHeader) into the form of MessageInput.Headers: lower-cased
// names, first occurrence only.
func HeadersFromMIME(h map[string][]string) map[string]string {
	out := make(map[string]string, len(h))
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		k = strings.ToLower(k)
		if _, dup := out[k]; !dup {
			out[k] = vs[0]
		}
	}
	return out
}

// FillFromHeaders sets in.Tenant and in.Campaign, where empty, from the
// headers that name them (config rules.tenantHeader and campaignHeader).
func FillFromHeaders(in *MessageInput, tenantHeader, campaignHeader string) {
	if in.Tenant == "" {
		in.Tenant = strings.TrimSpace(in.Header(tenantHeader))
	}
	if in.Campaign == "" {
		in.Campaign = strings.TrimSpace(in.Header(campaignHeader))
	}
}

// Header is the value of the first field called name (any case), or "".
func (in *MessageInput) Header(name string) string {
	if name == "" {
		return ""
	}
	if v, ok := in.Headers[name]; ok {
		return v
	}
	for k, v := range in.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// HeaderAfter is the first field called name as the message is stored,
// after the decision's header changes (intake removes the fields named,
// then puts the added ones on top): what the DKIM signer sees.
func (d *MessageDecision) HeaderAfter(in *MessageInput, name string) string {
	for _, h := range d.AddHeaders {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	for _, r := range d.RemoveHeaders {
		if strings.EqualFold(r, name) {
			return ""
		}
	}
	return in.Header(name)
}

// EvalMessage runs the message rules on m. It never fails: a rule that
// errors is skipped and reported in Errors.
func (s *Set) EvalMessage(m *MessageInput) MessageDecision {
	return s.evalMessage(m, nil)
}

func (s *Set) evalMessage(m *MessageInput, trace func(Step)) MessageDecision {
	d := MessageDecision{Pool: s.defaultPool, Tenant: m.Tenant, Campaign: m.Campaign, Priority: DefaultPriority}
	act := messageActivations.Get().(*messageActivation)
	act.reset(m)
	frame, err := interpreter.NewExecutionFrame(act)
	if err != nil {
		frame = nil // rules then make their own
	}
	defer func() {
		if frame != nil {
			frame.Close()
		}
		act.reset(nil)
		messageActivations.Put(act)
	}()

	for _, r := range s.message {
		matched, err := r.eval(act, frame)
		if err != nil {
			r.stats.errors.Add(1)
			d.Errors = append(d.Errors, runtimeError(r.name, err))
			s.log.Warn("message rule failed; treated as not matching", "rule", r.name, "error", err)
			if trace != nil {
				trace(Step{Rule: r.name, Err: err.Error()})
			}
			continue
		}
		if trace != nil {
			trace(Step{Rule: r.name, Matched: matched})
		}
		if !matched {
			continue
		}
		r.stats.hits.Add(1)
		d.Matched = append(d.Matched, r.name)
		c := r.cfg
		if c.Pool != "" {
			d.Pool = c.Pool
		}
		if c.Route != "" {
			d.Route = c.Route
		}
		if c.Tenant != nil {
			d.Tenant = *c.Tenant
			act.setTenant(d.Tenant)
		}
		if c.Campaign != nil {
			d.Campaign = *c.Campaign
			act.setCampaign(d.Campaign)
		}
		if c.Priority != nil {
			d.Priority = *c.Priority
		}
		if len(c.DKIM) > 0 {
			d.DKIM = c.DKIM
		}
		d.AddHeaders = append(d.AddHeaders, r.addHeaders...)
		d.RemoveHeaders = append(d.RemoveHeaders, c.RemoveHeaders...)
		if c.Reject != nil {
			rej := *c.Reject
			d.Reject = &rej
			break
		}
		if c.Stop {
			break
		}
	}
	return d
}

// Message variables, as indexes into messageActivation.vals.
const (
	mSender = iota
	mSenderDomain
	mRecipients
	mRecipientDomains
	mHeaders
	mSize
	mListener
	mClientIP
	mUser
	mTenant
	mCampaign
	mSPF
	mDKIM
	mDMARC
	mARC
	mAuth
	mTags
	nMessageVars
)

// messageActivation supplies the variables of one message, converting each
// to a CEL value on first use and reusing it across rules. Pooled, so the
// hot path allocates only the values rules actually read.
type messageActivation struct {
	in       *MessageInput
	headers  map[string]string // lower-cased
	tenant   string
	campaign string
	vals     [nMessageVars]ref.Val
}

var messageActivations = sync.Pool{New: func() any { return &messageActivation{} }}

func (a *messageActivation) reset(m *MessageInput) {
	a.in = m
	a.vals = [nMessageVars]ref.Val{}
	a.headers = nil
	if m != nil {
		a.headers = lowerKeys(m.Headers)
		a.tenant, a.campaign = m.Tenant, m.Campaign
	}
}

func (a *messageActivation) setTenant(t string) {
	a.tenant = t
	a.vals[mTenant] = nil
}

func (a *messageActivation) setCampaign(c string) {
	a.campaign = c
	a.vals[mCampaign] = nil
}

// lowerKeys returns h with lower-cased keys, copying only when needed.
func lowerKeys(h map[string]string) map[string]string {
	for k := range h {
		if hasUpperASCII(k) {
			out := make(map[string]string, len(h))
			for k, v := range h {
				lk := strings.ToLower(k)
				// With two spellings of one name, the lower-case one wins,
				// whatever the map's order.
				if _, dup := out[lk]; !dup || lk == k {
					out[lk] = v
				}
			}
			return out
		}
	}
	return h
}

func hasUpperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}

func (a *messageActivation) ResolveName(name string) (any, bool) {
	var i int
	switch name {
	case varSender:
		i = mSender
	case varSenderDomain:
		i = mSenderDomain
	case varRecipients:
		i = mRecipients
	case varRecipientDomains:
		i = mRecipientDomains
	case varHeaders:
		i = mHeaders
	case varSize:
		i = mSize
	case varListener:
		i = mListener
	case varClientIP:
		i = mClientIP
	case varUser:
		i = mUser
	case varTenant:
		i = mTenant
	case varCampaign:
		i = mCampaign
	case varSPF:
		i = mSPF
	case varDKIM:
		i = mDKIM
	case varDMARC:
		i = mDMARC
	case varARC:
		i = mARC
	case varAuth:
		i = mAuth
	case varTags:
		i = mTags
	default:
		return nil, false
	}
	if v := a.vals[i]; v != nil {
		return v, true
	}
	v := a.value(i)
	a.vals[i] = v
	return v, true
}

func (a *messageActivation) value(i int) ref.Val {
	m := a.in
	switch i {
	case mSender:
		return types.String(m.Sender)
	case mSenderDomain:
		return types.String(domainOf(m.Sender))
	case mRecipients:
		return stringList(m.Recipients)
	case mRecipientDomains:
		return stringList(recipientDomains(m.Recipients))
	case mHeaders:
		h := a.headers
		if h == nil {
			h = map[string]string{}
		}
		return types.NewStringStringMap(types.DefaultTypeAdapter, h)
	case mSize:
		return types.Int(m.Size)
	case mListener:
		return types.String(m.Listener)
	case mClientIP:
		return types.String(m.ClientIP)
	case mUser:
		return types.String(m.User)
	case mTenant:
		return types.String(a.tenant)
	case mCampaign:
		return types.String(a.campaign)
	case mSPF:
		return m.Auth.spfVal()
	case mDKIM:
		return m.Auth.dkimVal()
	case mDMARC:
		return m.Auth.dmarcVal()
	case mARC:
		return m.Auth.arcVal()
	case mAuth:
		return m.Auth.authVal()
	case mTags:
		return stringList(m.Tags)
	}
	return types.NewErr("no variable %d", i)
}

func (a *messageActivation) Parent() interpreter.Activation { return nil }

// stringList boxes the elements once, so that several rules iterating over
// the list do not box them again on every pass.
func stringList(l []string) ref.Val {
	vals := make([]ref.Val, len(l))
	for i, v := range l {
		vals[i] = types.String(v)
	}
	return types.NewRefValList(types.DefaultTypeAdapter, vals)
}

// domainOf returns the lower-cased domain of an address ("" if none).
func domainOf(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], ">"))
}

func recipientDomains(rcpts []string) []string {
	out := make([]string, 0, 1)
	for _, r := range rcpts {
		d := domainOf(r)
		if d == "" {
			continue
		}
		dup := false
		for _, o := range out {
			if o == d {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, d)
		}
	}
	return out
}
