package config

import (
	"encoding/json"
	"fmt"
)

// Stage names of rules.connect, helo, mail and rcpt.
const (
	StageConnect = "connect"
	StageHelo    = "helo"
	StageMail    = "mail"
	StageRcpt    = "rcpt"
)

// StageRule mirrors #StageRule: a rule of one SMTP stage of reception.
type StageRule struct {
	Name     string  `json:"name"`
	When     string  `json:"when"`
	Tag      TagList `json:"tag,omitempty"`
	Accept   bool    `json:"accept,omitempty"`
	Reject   *Reject `json:"reject,omitempty"`
	Tempfail *Reject `json:"tempfail,omitempty"`
	Greylist bool    `json:"greylist,omitempty"`

	// Stage is the stage whose list holds the rule; WhenPos as for
	// MessageRule.
	Stage   string `json:"-"`
	WhenPos Pos    `json:"-"`
	whenAt  *lazyPos
	at      *lazyPos
}

// Where is where the rule's `when` expression starts.
func (r *StageRule) Where() Pos { return r.whenAt.or(r.WhenPos) }

// RulePos is where the rule itself is written (for errors about its
// actions).
func (r *StageRule) RulePos() Pos { return r.at.or(r.WhenPos) }

// TagList is a tag written as one string or a list.
type TagList []string

func (t *TagList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*t = TagList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("tag must be a string or a list of strings: %w", err)
	}
	*t = many
	return nil
}

// StageRules returns the rules of a stage.
func (r *Rules) StageRules(stage string) []*StageRule {
	switch stage {
	case StageConnect:
		return r.Connect
	case StageHelo:
		return r.Helo
	case StageMail:
		return r.Mail
	case StageRcpt:
		return r.Rcpt
	}
	return nil
}

// Stages are the stages with rules, in protocol order.
var Stages = []string{StageConnect, StageHelo, StageMail, StageRcpt}

// DNSBL mirrors #Config.dnsbl.
type DNSBL struct {
	Timeout   Duration `json:"timeout"`
	Budget    int      `json:"budget"`
	CacheSize int      `json:"cacheSize"`
}

// Greylisting mirrors #Config.greylist (receiver greylisting; Greylist is
// a delivery profile's handling of being greylisted).
type Greylisting struct {
	Delay         Duration `json:"delay"`
	RetryWindow   Duration `json:"retryWindow"`
	Expiry        Duration `json:"expiry"`
	AutoWhitelist int      `json:"autoWhitelist"`
	IPv4Prefix    int      `json:"ipv4Prefix"`
	IPv6Prefix    int      `json:"ipv6Prefix"`
	MaxEntries    int      `json:"maxEntries"`
}

// TestStage mirrors #PolicyTest.stage.
type TestStage struct {
	Stage      string                         `json:"stage"`
	ClientIP   string                         `json:"clientIP"`
	ClientName string                         `json:"clientName"`
	Helo       string                         `json:"helo"`
	TLS        bool                           `json:"tls"`
	User       string                         `json:"user"`
	Listener   string                         `json:"listener"`
	Sender     string                         `json:"sender"`
	Recipient  string                         `json:"recipient"`
	Tags       []string                       `json:"tags"`
	DNSBL      map[string][]string            `json:"dnsbl"`
	RHSBL      map[string]map[string][]string `json:"rhsbl"`
}
