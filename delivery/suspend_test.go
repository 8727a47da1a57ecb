package delivery

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
)

// TestSuspensionScopes: a suspension holds exactly the mail its scope
// names, whether the operator or a rule made it: a site (every source), a
// source everywhere, a source at one site, a provider (every source, or
// one), a tenant, a campaign. Held mail waits in the spool, due when the
// suspension ends, and never reaches the server; the rest is delivered.
//
// Site A (mx.a.prov.test) is a site of provider prov, site B (mx.b.test)
// of none; pool p1 sends from source s1, pool p2 from s2.
func TestSuspensionScopes(t *testing.T) {
	type msg struct{ domain, pool, tenant, campaign string }
	msgs := map[string]msg{
		"m1": {"a.test", "p1", "t1", ""},
		"m2": {"a.test", "p2", "", "c1"},
		"m3": {"b.test", "p1", "", ""},
		"m4": {"b.test", "p2", "t2", "c2"},
	}
	tests := []struct {
		name       string
		scope, key string // an operator's suspension
		rule       string // else the scope of a rule's, on a reply to mail to A from p1 of t1 in c1
		held       []string
	}{
		{name: "operator: site", scope: ScopeSite, key: "mx:mx.a.prov.test", held: []string{"m1", "m2"}},
		{name: "operator: source everywhere", scope: ScopeSource, key: "s1", held: []string{"m1", "m3"}},
		{name: "operator: source at a site", scope: ScopeSource, key: "mx:mx.b.test/s2", held: []string{"m4"}},
		{name: "operator: provider", scope: ScopeProvider, key: "prov", held: []string{"m1", "m2"}},
		{name: "operator: provider for one source", scope: ScopeProvider, key: "prov/s2", held: []string{"m2"}},
		{name: "operator: tenant", scope: ScopeTenant, key: "t1", held: []string{"m1"}},
		{name: "operator: campaign", scope: ScopeCampaign, key: "c2", held: []string{"m4"}},
		{name: "rule: site", rule: ScopeSite, held: []string{"m1", "m2"}},
		{name: "rule: source", rule: ScopeSource, held: []string{"m1"}},
		{name: "rule: provider", rule: ScopeProvider, held: []string{"m1"}},
		{name: "rule: tenant", rule: ScopeTenant, held: []string{"m1"}},
		{name: "rule: campaign", rule: ScopeCampaign, held: []string{"m2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := `hostname: "mta.example"
profiles: default: {tls: "none", connectionRate: "1000/s", retry: jitter: 0}
profiles: prov: match: mx: ["*.prov.test"]
pools: p1: sources: s1: addr: "127.0.0.2"
pools: p2: sources: s2: addr: "127.0.0.3"
delivery: defaultPool: "p1"
`
			if tc.rule != "" {
				src += fmt.Sprintf(`profiles: default: rules: [{name: "blocked", when: "reply.text.contains('blocked')", classify: "transient", suspend: {scope: %q, for: "1h"}}]`+"\n", tc.rule)
			}
			a := startScriptedMX(t, mxScript{reply: func(_ *mxSession, verb, rcpt string) string {
				if verb == "RCPT" && strings.HasPrefix(rcpt, "trigger@") {
					return "550 5.7.1 sending IP blocked"
				}
				return ""
			}})
			b := startFakeMX(t)
			dns := fakeDNS{mx: map[string][]string{"a.test": {"mx.a.prov.test"}, "b.test": {"mx.b.test"}},
				hosts: map[string]string{"mx.a.prov.test": "192.0.2.1", "mx.b.test": "192.0.2.2"}}
			r := newSchedulerRig(t, src, dns, map[string]*fakeMX{"192.0.2.1": a, "192.0.2.2": b})
			until := clockStart.Add(time.Hour)
			if tc.rule == "" {
				if err := r.e.Suspend(tc.scope, tc.key, until, "test", originAdmin); err != nil {
					t.Fatal(err)
				}
			} else {
				trigger := r.send(queue.Envelope{Recipients: rcpts("trigger@a.test"), Pool: "p1", Tenant: "t1", Campaign: "c1"})
				r.waitAttempted(1, trigger)
				if sus := r.e.Suspensions(); len(sus) != 1 || sus[0].Scope != tc.rule || sus[0].Origin != "blocked" || !sus[0].Until.Equal(until) {
					t.Fatalf("suspensions after the reply %+v, want one of scope %s by rule blocked for 1h", sus, tc.rule)
				}
			}
			r.clock.Advance(time.Minute) // mail sent now is due before the suspension ends
			ids := map[string]string{}
			for _, name := range []string{"m1", "m2", "m3", "m4"} {
				m := msgs[name]
				ids[name] = r.send(queue.Envelope{Recipients: rcpts(name + "@" + m.domain), Pool: m.pool, Tenant: m.tenant, Campaign: m.campaign})
			}
			for _, id := range ids {
				r.waitAttempted(1, id)
			}
			var held []string
			for name, id := range ids {
				if _, queued := r.spool.Get(id); !queued {
					continue
				}
				held = append(held, name)
				if next := r.nextAttempt(id); next != time.Hour {
					t.Errorf("%s held until +%v, want the suspension's end (+1h)", name, next)
				}
				if st, reply := r.status(id, name+"@"+msgs[name].domain); st != "pending" || !strings.Contains(reply, "suspended (") {
					t.Errorf("%s is %s with %q, want pending with the suspension's reply", name, st, reply)
				}
			}
			slices.Sort(held)
			if !slices.Equal(held, tc.held) {
				t.Errorf("held %v, want %v (suspensions %v)", held, tc.held, r.suspensions())
			}
			seen := map[string]bool{}
			for _, f := range []*fakeMX{a, b} {
				for _, txn := range f.transactions() {
					seen[strings.Split(txn.rcpts[0], "@")[0]] = true
				}
			}
			for _, name := range tc.held {
				if seen[name] {
					t.Errorf("%s reached the server while suspended", name)
				}
			}
		})
	}
}
