package rules

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cuemta/cuemta/config"
)

// realisticMessageRules is 20 rules of the kind operators write: sender
// domain routing, header-based tenant and campaign tagging, recipient-domain
// pools, a few rejects.
func realisticMessageRules() []*config.MessageRule {
	pool := func(p string) func(*config.MessageRule) { return func(r *config.MessageRule) { r.Pool = p } }
	return []*config.MessageRule{
		msgRule("reject-spoofed-local", `listener == "mx" && sender_domain == "corp.example" && user == ""`, func(r *config.MessageRule) {
			r.Reject = &config.Reject{Code: 550, Enhanced: "5.7.1", Text: "spoofed"}
		}),
		msgRule("reject-huge", `size > 50000000`, func(r *config.MessageRule) { r.Reject = &config.Reject{Code: 552, Enhanced: "5.3.4"} }),
		msgRule("tenant-from-header", `header("X-Tenant") != ""`, func(r *config.MessageRule) { r.Tenant = ptr("from-header") }),
		msgRule("tenant-acme", `sender_domain in ["acme.example", "mail.acme.example"]`, func(r *config.MessageRule) { r.Tenant = ptr("acme") }),
		msgRule("tenant-globex", `sender_domain.endsWith(".globex.example")`, func(r *config.MessageRule) { r.Tenant = ptr("globex") }),
		msgRule("campaign-header", `"x-campaign-id" in headers`, func(r *config.MessageRule) { r.Campaign = ptr("tagged") }),
		msgRule("bulk-precedence", `header("Precedence") in ["bulk", "list", "junk"]`, pool("bulk")),
		msgRule("bulk-unsubscribe", `header("List-Unsubscribe") != "" && header("List-Unsubscribe-Post") != ""`, pool("bulk")),
		msgRule("transactional", `header("X-Message-Type").lowerAscii() == "transactional"`, func(r *config.MessageRule) {
			r.Pool = "transactional"
			r.Priority = ptr(8)
		}),
		msgRule("password-reset", `header("Subject").lowerAscii().contains("password reset")`, func(r *config.MessageRule) { r.Priority = ptr(9) }),
		msgRule("gmail-pool", `recipient_domains.exists(d, d in ["gmail.com", "googlemail.com"])`, pool("google")),
		msgRule("yahoo-pool", `recipient_domains.exists(d, d.startsWith("yahoo."))`, pool("yahoo")),
		msgRule("ms-pool", `recipient_domains.exists(d, d in ["outlook.com", "hotmail.com", "live.com"])`, pool("microsoft")),
		msgRule("internal-route", `recipient_domains.all(d, d == "corp.example")`, func(r *config.MessageRule) { r.Route = "10.0.0.25:25" }),
		msgRule("dkim-acme", `tenant == "acme"`, func(r *config.MessageRule) { r.DKIM = config.KeyList{"acme"} }),
		msgRule("dkim-none-bounces", `sender == ""`, func(r *config.MessageRule) { r.DKIM = config.KeyList{"none"} }),
		msgRule("strip-internal", `listener == "submission"`, func(r *config.MessageRule) { r.RemoveHeaders = []string{"X-Originating-IP"} }),
		msgRule("add-feedback-id", `tenant != "" && campaign != ""`, func(r *config.MessageRule) {
			r.AddHeaders = map[string]string{"Feedback-ID": "c:t:cuemta"}
		}),
		msgRule("many-recipients", `size(recipients) > 100`, func(r *config.MessageRule) { r.Priority = ptr(1) }),
		msgRule("vip-client", `client_ip.startsWith("192.0.2.") && user != ""`, func(r *config.MessageRule) {
			r.Priority = ptr(7)
			r.Stop = true
		}),
	}
}

func benchMessages(n int) []*MessageInput {
	rng := rand.New(rand.NewPCG(3, 4))
	senders := []string{"news@acme.example", "alerts@eu.globex.example", "noreply@shop.example", "", "ceo@corp.example"}
	rcptDomains := []string{"gmail.com", "yahoo.com", "outlook.com", "example.net", "corp.example"}
	out := make([]*MessageInput, n)
	for i := range out {
		h := map[string]string{
			"From":       "Sender <x@example>",
			"To":         "r@example",
			"Subject":    []string{"Your weekly digest", "Password reset requested", "Invoice 42"}[rng.IntN(3)],
			"Message-ID": fmt.Sprintf("<%d@example>", i),
			"Date":       "Mon, 1 Jan 2025 00:00:00 +0000",
		}
		if rng.IntN(2) == 0 {
			h["List-Unsubscribe"] = "<mailto:u@example>"
			h["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
			h["Precedence"] = "bulk"
		}
		if rng.IntN(3) == 0 {
			h["X-Campaign-ID"] = "spring"
		}
		var rcpts []string
		for range 1 + rng.IntN(3) {
			rcpts = append(rcpts, fmt.Sprintf("user%d@%s", rng.IntN(1000), rcptDomains[rng.IntN(len(rcptDomains))]))
		}
		out[i] = &MessageInput{
			Sender: senders[rng.IntN(len(senders))], Recipients: rcpts, Headers: HeadersFromMIME(mimeOf(h)),
			Size: int64(2000 + rng.IntN(100000)), Listener: []string{"mx", "submission"}[rng.IntN(2)],
			ClientIP: "198.51.100.7",
		}
	}
	return out
}

func mimeOf(h map[string]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		out[k] = []string{v}
	}
	return out
}

func BenchmarkEvalMessage20Rules(b *testing.B) {
	cfg := newConfig()
	cfg.Rules.Message = realisticMessageRules()
	s := mustCompile(b, cfg)
	msgs := benchMessages(256)
	for _, m := range msgs {
		if d := s.EvalMessage(m); len(d.Errors) > 0 {
			b.Fatalf("rule errors: %v", d.Errors)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s.EvalMessage(msgs[i%len(msgs)])
	}
}

func benchResponse(b *testing.B, linear bool) {
	s := mustCompile(b, realisticResponseConfig())
	rng := rand.New(rand.NewPCG(5, 6))
	replies := realisticReplies(rng, 1024)
	chains := replyChains()[:4] // one provider profile + default, as in delivery
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s.evalResponse(replies[i%len(replies)], chains[i%len(chains)], linear, nil)
	}
}

func BenchmarkEvalResponse50Rules(b *testing.B)       { benchResponse(b, false) }
func BenchmarkEvalResponse50RulesLinear(b *testing.B) { benchResponse(b, true) }

func BenchmarkEvalResponseParallel(b *testing.B) {
	s := mustCompile(b, realisticResponseConfig())
	replies := realisticReplies(rand.New(rand.NewPCG(5, 6)), 1024)
	chains := replyChains()[:4]
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.EvalResponse(replies[i%len(replies)], chains[i%len(chains)])
			i++
		}
	})
}
