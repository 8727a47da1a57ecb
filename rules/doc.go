// Package rules compiles and evaluates the CEL rules of a cuemta
// configuration: stage rules, run at each SMTP stage of reception
// (connect, HELO, MAIL, RCPT), message rules, run once per message at
// reception, and response rules, run on every SMTP reply during delivery.
//
// # Compilation
//
// Compile turns a *config.Config into an immutable, concurrency-safe *Set.
// Every `when` expression is parsed and type-checked against the variables
// below; an unknown variable or field, a syntax error or a non-boolean
// result is a config error positioned at the offending character of the CUE
// file (see positionOf for how columns inside multi-line strings are found).
// Rule names must be unique among message rules and among all response
// rules (global and per-profile together), because counters, thresholds and
// `cuemta test` expectations refer to rules by name. A response rule that
// provably can never fire is an error too (see unreachable.go): one after
// an unconditional rule, or after a rule with the same `when`, that has no
// threshold; one whose guard wants a code and an enhanced code of
// different classes.
//
// # Message rules
//
// Variables: sender (string, "" for the null sender), sender_domain,
// recipients (list of string), recipient_domains (lower-cased, in first-seen
// order, without duplicates), headers (map of lower-cased header name to the
// first occurrence's value), size (int), listener, client_ip, user, tenant,
// campaign. tenant and campaign are the values decided so far, so a rule can
// act on the tenant an earlier rule assigned. header(name) looks a header up
// case-insensitively and yields "" when it is absent, so rules never fail
// with "no such key" (it is a macro for header(headers, name), so a
// comprehension variable named `headers` would shadow it). The strings
// extension (lowerAscii, split, ...) and optional values (m[?k]) are on.
//
// Rules run in order. Each matching rule applies its actions in the order
// pool, route, tenant, campaign, priority, dkim, addHeaders, removeHeaders,
// reject; a reject ends evaluation, as does `stop: true` after the rule's
// actions. A rule that fails at run time (or exceeds the cost limit) is
// counted, logged and treated as not matching: a broken rule never drops or
// rejects mail on its own.
//
// # Stage rules
//
// Each stage has its own environment, declaring only what is known there
// (stage.go): client_ip, client_name, tls, listener and tags everywhere;
// helo from the HELO stage on; user, sender, sender_domain from MAIL;
// recipient, recipient_domain at RCPT. dnsbl(zone) and rhsbl(domain, zone)
// are macros for calls with a hidden argument, the session's Lookups, so
// the DNS is asked only when evaluation reaches them; a Lookups answers
// "not listed" for a failed lookup, so no rule can refuse mail because DNS
// failed. ip.in([networks]) is CIDR membership (cidr.go; `.in(` is
// rewritten to `.iN(` since `in` is a CEL keyword). Rules run in order: a
// match adds its tags; accept, reject, tempfail or greylist decide and end
// evaluation. The relay check is reception's, before the rcpt rules: an
// accept here never accepts a recipient.
//
// # Response rules
//
// Variables: reply (an object with fields code int, enhanced string, text
// string, lines list of string, stage string; stage is one of connect,
// greeting, ehlo, starttls, auth, mail, rcpt, data, eod), site, mx, domain,
// profile (the most specific profile matching the destination), source,
// pool, tenant, campaign, attempt (int) and recent (map of string to int:
// the site's recent reply counts by class "2xx", "4xx", "5xx" and by code
// such as "421"). A key missing from recent is a run-time error, as for any
// CEL map: write
// `recent[?"421"].orValue(0) > 10` or `"421" in recent && recent["421"] > 10`.
//
// reply.text is the reply on one line: the lines of a multi-line reply are
// joined with a single space, and the enhanced code that servers repeat at
// the start of each line is kept once, in reply.enhanced (see
// smtpreply.FromLines). So a phrase matches however the server wrapped it:
// Gmail's "... reputation of the sending" / "domain. ..." still contains
// "reputation of the sending domain". reply.lines are the lines as received
// (after the code and its separator, enhanced codes included) for a rule
// that needs the wrapping itself.
//
// Global rules run first, then the rules of each matched profile, most
// specific profile first. The first rule that matches decides, except that a
// rule with a threshold decides only once `count` matching replies (this one
// included) came from the same site within `within`, a sliding window kept
// by a Tracker; a match below the threshold is recorded and evaluation goes
// on. A reply no rule decides is classified by its code class: 2xx
// delivered, 4xx transient, 5xx permanent.
//
// Cost: rules are evaluated synchronously without a deadline. A rule with a
// comprehension whose statically estimated worst case (from bounds on the
// inputs, see cost.go) exceeds the cost limit is cost-tracked at run time
// and fails when it exceeds the limit; other rules do work linear in their
// inputs and run without tracking, which would triple their cost.
//
// To keep per-reply cost low, each rule's checked expression is analysed at
// compile time for top-level guards on reply.code, reply.stage and
// reply.enhanced (see index.go); rules whose guards cannot hold for a reply
// are skipped without evaluation. The analysis is exact with respect to CEL
// semantics (a false conjunct makes `&&` false even when the other side
// errors), so the indexed evaluation decides exactly as a linear one.
package rules
