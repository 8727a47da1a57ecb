package reception

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/dnsbl"
	smtp "github.com/cuemta/cuemta/reception/internal/smtpd"
	"github.com/cuemta/cuemta/rules"
)

// Stage rules (rules.connect, helo, mail, rcpt) run at each SMTP stage of
// reception. They come after the checks of this package at each stage
// (syntax, the relay check, suppression, limits) and can only add
// refusals to them: an accept ends a stage's rules, it never accepts a
// recipient the relay check refused, so rules cannot open a relay.

// StagePolicy is what reception needs of the compiled rules: *rules.Set.
type StagePolicy interface {
	HasStageRules(stage string) bool
	EvalStage(in *rules.StageInput) rules.StageDecision
}

// Greylister decides a greylisted triplet: ok when the client retried
// after the delay (or is whitelisted); package greylist implements it.
type Greylister interface {
	Check(client netip.Addr, sender, recipient string) (ok bool)
}

// connStages is a connection's stage-rule state: its lookups and the tags
// of its connect and HELO stages. It lives on the connection goroutine.
type connStages struct {
	lookups  *dnsbl.Session // nil without Policy.DNSBL
	connTags []string
	heloTags []string
}

// Replies of stage rules whose text is not configurable.
var (
	// RFC 5321 §4.2.5 451 with RFC 3463 X.7.1 (delivery not authorized,
	// temporarily): the usual greylisting reply.
	errGreylisted = newReply(451, "4.7.1", "Greylisted, try again later")
)

func (s *Server) stagesOf(tc *trackedConn) *connStages {
	if tc.stages == nil {
		cs := &connStages{}
		if s.policy.DNSBL != nil {
			// Bounded by the lookup timeout; the server's context ends
			// them at shutdown.
			cs.lookups = s.policy.DNSBL.Session(s.ctx, tc.ip)
		}
		tc.stages = cs
	}
	return tc.stages
}

// stageInput is the input of a stage's rules on this connection.
func (s *Server) stageInput(tc *trackedConn, stage string, isTLS bool) *rules.StageInput {
	cs := s.stagesOf(tc)
	in := &rules.StageInput{Stage: stage, ClientIP: clientIP(tc), TLS: isTLS, Listener: s.name,
		Tags: append(slices.Clip(cs.connTags), cs.heloTags...)}
	if cs.lookups != nil {
		in.Lookups = cs.lookups
	}
	return in
}

// evalStage runs a stage's rules and logs what they decided.
func (s *Server) evalStage(in *rules.StageInput, log func(msg string, args ...any)) rules.StageDecision {
	start := time.Now()
	d := s.policy.Stages.EvalStage(in)
	if d.Action != rules.ActionContinue || len(d.Tags) > 0 {
		log("stage rules", "stage", in.Stage, "action", d.Action, "rule", d.Rule, "tags", d.Tags,
			"took", time.Since(start))
	}
	return d
}

// stageReply is the reply of a refusing decision (nil for the others).
// At connect the rules give 554 5.7.1 or 421 4.7.1 (RFC 5321 §3.1, §3.8),
// the only refusals a greeting can carry; the connection closes after
// them.
func stageReply(d rules.StageDecision) *smtp.SMTPError {
	r := d.Reply
	if r == nil {
		return nil
	}
	text := r.Text
	if text == "" {
		text = "Rejected by policy"
	}
	return newReply(r.Code, r.Enhanced, oneLine(text))
}

// connectHook is the fork's Server.ConnectHook: the connect rules.
func (s *Server) connectHook(c *smtp.Conn) error {
	if s.policy.Stages == nil || !s.policy.Stages.HasStageRules(config.StageConnect) {
		return nil
	}
	tc, err := connOf(c.Conn())
	if err != nil {
		return nil
	}
	_, isTLS := c.TLSConnectionState()
	in := s.stageInput(tc, config.StageConnect, isTLS)
	d := s.evalStage(in, s.stageLog(tc))
	cs := s.stagesOf(tc)
	cs.connTags = append(cs.connTags, d.Tags...)
	if rep := stageReply(d); rep != nil {
		s.log.Info("connection refused by connect rule", "conn", tc.id, "client_ip", clientIP(tc), "rule", d.Rule, "reply", rep.Error())
		return rep
	}
	return nil
}

// helloHook is the fork's Server.HelloHook: the HELO rules, at each
// HELO/EHLO (a new one replaces the tags of the last).
func (s *Server) helloHook(c *smtp.Conn, domain string) error {
	if s.policy.Stages == nil || !s.policy.Stages.HasStageRules(config.StageHelo) {
		return nil
	}
	tc, err := connOf(c.Conn())
	if err != nil {
		return nil
	}
	_, isTLS := c.TLSConnectionState()
	cs := s.stagesOf(tc)
	in := s.stageInput(tc, config.StageHelo, isTLS)
	in.Helo = domain
	in.Tags = slices.Clone(cs.connTags) // not those of the HELO this one replaces
	d := s.evalStage(in, s.stageLog(tc))
	if rep := stageReply(d); rep != nil {
		// The HELO in effect (if any) stays, with its tags.
		s.log.Info("HELO refused by helo rule", "conn", tc.id, "client_ip", clientIP(tc), "helo", domain, "rule", d.Rule, "reply", rep.Error())
		return rep
	}
	cs.heloTags = d.Tags
	return nil
}

func (s *Server) stageLog(tc *trackedConn) func(string, ...any) {
	return func(msg string, args ...any) {
		s.log.Debug(msg, append([]any{"conn", tc.id, "client_ip", clientIP(tc)}, args...)...)
	}
}

// mailRules runs the mail rules for a MAIL FROM that passed every other
// check; the tags go to the transaction.
func (s *session) mailRules(from string) ([]string, error) {
	cs := s.srv.stagesOf(s.tc)
	if cs.lookups != nil {
		cs.lookups.NewTransaction()
	}
	if s.srv.policy.Stages == nil || !s.srv.policy.Stages.HasStageRules(config.StageMail) {
		return nil, nil
	}
	in := s.srv.stageInput(s.tc, config.StageMail, s.tls)
	in.Helo, in.User, in.Sender = s.conn.Hostname(), s.user, from
	d := s.srv.evalStage(in, s.log.Debug)
	if rep := stageReply(d); rep != nil {
		s.log.Info("sender refused by mail rule", "from", from, "rule", d.Rule, "reply", rep.Error())
		return nil, rep
	}
	return d.Tags, nil
}

// rcptRules runs the rcpt rules for a recipient the relay check and the
// other checks accepted; greylisting is decided here.
func (s *session) rcptRules(txn *transaction, to string, postmaster bool) error {
	if postmaster {
		// RFC 5321 §4.5.1: <Postmaster> must be accepted; no rule refuses it.
		return nil
	}
	if s.srv.policy.Stages == nil || !s.srv.policy.Stages.HasStageRules(config.StageRcpt) {
		return nil
	}
	in := s.srv.stageInput(s.tc, config.StageRcpt, s.tls)
	in.Helo, in.User, in.Sender, in.Recipient = txn.helo, s.user, txn.from, to
	in.Tags = append(in.Tags, txn.tags...)
	d := s.srv.evalStage(in, s.log.Debug)
	for _, t := range d.Tags {
		if !slices.Contains(txn.tags, t) {
			txn.tags = append(txn.tags, t)
		}
	}
	if d.Action == rules.ActionGreylist {
		g := s.srv.policy.Greylist
		if g == nil {
			s.log.Warn("greylist rule matched but greylisting is not set up; recipient accepted", "rule", d.Rule)
			return nil
		}
		if !g.Check(s.tc.ip, strings.ToLower(txn.from), strings.ToLower(to)) {
			s.log.Info("recipient greylisted", "trace", txn.id, "from", txn.from, "rcpt", to, "rule", d.Rule)
			return errGreylisted
		}
		return nil
	}
	if rep := stageReply(d); rep != nil {
		s.log.Info("recipient refused by rcpt rule", "trace", txn.id, "rcpt", to, "rule", d.Rule, "reply", rep.Error())
		return rep
	}
	return nil
}

// tagsOf is every tag of the connection and transaction, for the Sink.
func (s *session) tagsOf(txn *transaction) []string {
	cs := s.tc.stages
	if cs == nil {
		return nil
	}
	var out []string
	for _, l := range [][]string{cs.connTags, cs.heloTags, txn.tags} {
		for _, t := range l {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}
