package dkim

import (
	"maps"
	"net/mail"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/internal/maildomain"
)

// Which step of the selection chose a message's keys (Selection.By).
const (
	ByRule    = "rule"    // a message rule named them
	ByFrom    = "from"    // the From: header's domain, or a parent of it
	BySender  = "sender"  // the envelope sender's domain, or a parent of it
	ByDefault = "default" // dkim.default
)

// Alignment of a signature's d= with the From: domain (RFC 7489 §3.1.1).
const (
	AlignedStrict  = "strict"  // d= is the From: domain
	AlignedRelaxed = "relaxed" // d= and the From: domain share their organisational domain
	AlignedNone    = "none"    // neither, or the message has no readable From: domain
)

// SigningTable decides which keys sign a message. It is built from the
// config alone (no key file is read), so `cuemta test` and `cuemta
// explain` choose exactly as reception does. It is never modified after
// NewSigningTable and is safe for concurrent use.
//
// The order, first that gives keys wins:
//  1. a message rule's dkim (a name, a list, or "none": unsigned);
//  2. the From: header's domain (the domain DMARC checks, RFC 7489 §3.1),
//     then each parent of it down to its organisational domain;
//  3. the envelope sender's domain, the same way;
//  4. dkim.default.
//
// A domain's keys are its dkim.domains entry when there is one, else
// every key whose domain it is, in name order. Steps 2 and 3 run only
// with dkim.bySenderDomain.
type SigningTable struct {
	byDomain map[string][]string // lower-case A-label domain → key names
	dflt     []string
	bySender bool
}

// NewSigningTable builds the table of a config's dkim section.
func NewSigningTable(c *config.DKIM) *SigningTable {
	t := &SigningTable{byDomain: map[string][]string{}, dflt: slices.Clone(c.Default), bySender: c.BySenderDomain}
	for _, name := range slices.Sorted(maps.Keys(c.Keys)) {
		d := normDomain(c.Keys[name].Domain)
		t.byDomain[d] = append(t.byDomain[d], name)
	}
	// An entry in domains replaces the keys found by their domain.
	for d, e := range c.Domains {
		t.byDomain[normDomain(d)] = slices.Clone(e.Keys)
	}
	return t
}

// Selection is the keys chosen for one message.
type Selection struct {
	// Names are the keys to apply, in order; empty: the message is not
	// signed.
	Names []string
	// By is the step that chose (ByRule, ByFrom, BySender, ByDefault), or
	// "" when none did.
	By string
	// Domain is, for ByFrom and BySender, the domain whose keys were
	// taken: the address's domain or a parent of it.
	Domain string
}

// Select chooses the keys for a message: rule is the message rules'
// choice (nil when no rule chose), fromDomain the From: header's domain
// (FromDomain), sender the envelope sender's address.
func (t *SigningTable) Select(rule config.KeyList, fromDomain, sender string) Selection {
	switch {
	case rule.None():
		return Selection{By: ByRule}
	case len(rule) > 0:
		return Selection{Names: slices.Clone(rule), By: ByRule}
	}
	if t.bySender {
		if names, d := t.forDomain(fromDomain); len(names) > 0 {
			return Selection{Names: names, By: ByFrom, Domain: d}
		}
		if names, d := t.forDomain(normDomain(maildomain.Of(sender))); len(names) > 0 {
			return Selection{Names: names, By: BySender, Domain: d}
		}
	}
	if len(t.dflt) > 0 {
		return Selection{Names: slices.Clone(t.dflt), By: ByDefault}
	}
	return Selection{}
}

// forDomain is the keys of d or of its closest parent that has some, no
// higher than d's organisational domain: a key for a parent is aligned
// with d in relaxed mode (RFC 7489 §3.1.1), one for a domain above the
// organisational domain would not be.
func (t *SigningTable) forDomain(d string) ([]string, string) {
	if d == "" {
		return nil, ""
	}
	org := OrgDomain(d)
	for {
		if names := t.byDomain[d]; len(names) > 0 {
			return slices.Clone(names), d
		}
		if d == org {
			return nil, ""
		}
		_, parent, ok := strings.Cut(d, ".")
		if !ok || len(parent) < len(org) {
			return nil, ""
		}
		d = parent
	}
}

// OrgDomain is the organisational domain of d (RFC 7489 §3.2): the public
// suffix of d plus one label, by the Public Suffix List. A domain that is
// itself a public suffix is its own.
func OrgDomain(d string) string {
	d = normDomain(d)
	org, err := publicsuffix.EffectiveTLDPlusOne(d)
	if err != nil {
		return d
	}
	return org
}

// Alignment is how a signature with d=domain aligns with the From:
// domain (RFC 7489 §3.1.1): AlignedStrict, AlignedRelaxed or AlignedNone.
func Alignment(domain, fromDomain string) string {
	domain, fromDomain = normDomain(domain), normDomain(fromDomain)
	switch {
	case fromDomain == "" || domain == "":
		return AlignedNone
	case domain == fromDomain:
		return AlignedStrict
	case OrgDomain(domain) == OrgDomain(fromDomain):
		return AlignedRelaxed
	}
	return AlignedNone
}

// FromDomain is the domain of the first address of a From: header value,
// as lower-case A-labels, or "" when none can be read. RFC 7489 §6.6.1
// leaves a From: with several domains to local policy; the first
// mailbox is the author whose domain is signed for.
func FromDomain(header string) string {
	if header == "" {
		return ""
	}
	var addr string
	if list, err := mail.ParseAddressList(header); err == nil && len(list) > 0 {
		addr = list[0].Address
	} else {
		// An unparseable header (bare 8-bit text, a stray comma) still
		// usually names its address in angle brackets.
		addr = header
		if i := strings.LastIndexByte(addr, '<'); i >= 0 {
			addr = addr[i+1:]
			if j := strings.IndexByte(addr, '>'); j >= 0 {
				addr = addr[:j]
			}
		}
		addr = strings.TrimSpace(addr)
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return ""
	}
	d, err := maildomain.Normalize(addr[at+1:])
	if err != nil {
		return ""
	}
	return d
}

func normDomain(d string) string {
	d = strings.TrimSuffix(d, ".")
	if n, err := maildomain.Normalize(d); err == nil {
		return n
	}
	return strings.ToLower(d)
}
