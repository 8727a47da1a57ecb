package category

import (
	"regexp"
	"slices"
	"testing"

	"github.com/cuemta/cuemta/schema"
)

func TestOf(t *testing.T) {
	tests := []struct {
		name     string
		code     int
		enhanced string
		want     string
	}{
		{"delivered", 250, "2.0.0", ""},
		{"intermediate", 354, "", ""},
		{"connection failed before a reply", 0, "4.4.1", NoAnswer},
		{"connection lost before a reply", 0, "4.4.2", NoAnswer},
		{"user unknown", 550, "5.1.1", BadMailbox},
		{"bad address syntax", 553, "5.1.3", BadMailbox},
		{"domain does not exist", 550, "5.1.2", BadDomain},
		{"null MX", 556, "5.1.10", BadDomain},
		{"mailbox moved", 551, "5.1.6", InactiveMailbox},
		{"bad sender address", 553, "5.1.7", Policy},
		{"mailbox disabled", 550, "5.2.1", InactiveMailbox},
		{"mailbox full, permanent", 552, "5.2.2", Quota},
		{"mailbox full, temporary", 452, "4.2.2", Quota},
		{"over administrative size limit", 552, "5.2.3", MessageTooLarge},
		{"greylisting's 4.2.0", 450, "4.2.0", Other},
		{"mail system full", 452, "4.3.1", Quota},
		{"not accepting messages", 421, "4.3.2", NoAnswer},
		{"message too big", 552, "5.3.4", MessageTooLarge},
		{"system misconfigured", 554, "5.3.5", Routing},
		{"local spool read error", 451, "4.3.0", Other},
		{"temporary DNS failure", 451, "4.4.3", Routing},
		{"unable to route", 554, "5.4.4", Routing},
		{"congestion", 451, "4.4.5", RateLimited},
		{"mail loop", 554, "5.4.6", Routing},
		{"expired", 451, "4.4.7", Expired},
		{"syntax", 501, "5.5.2", Protocol},
		{"too many recipients", 452, "4.5.3", Protocol},
		{"conversion not supported", 554, "5.6.3", Protocol},
		{"SMTPUTF8 needed", 553, "5.6.7", Protocol},
		{"policy", 550, "5.7.1", Policy},
		{"policy, temporary", 451, "4.7.0", Policy},
		{"auth credentials invalid", 535, "5.7.8", Authentication},
		{"account disabled", 550, "5.7.13", InactiveMailbox},
		{"mailbox owner changed", 550, "5.7.17", InactiveMailbox},
		{"domain owner changed", 550, "5.7.18", BadDomain},
		{"no DKIM signature", 550, "5.7.20", Authentication},
		{"SPF failed", 550, "5.7.23", Authentication},
		{"reverse DNS failed", 550, "5.7.25", Authentication},
		{"DMARC/multiple checks", 550, "5.7.26", Authentication},
		{"mail flood", 421, "4.7.28", RateLimited},
		{"REQUIRETLS", 550, "5.7.30", Protocol},
		{"undefined", 554, "5.0.0", Other},
		{"unknown subject", 554, "5.9.9", Other},
		// Without an enhanced code, the basic code.
		{"421 alone", 421, "", NoAnswer},
		{"500 alone", 500, "", Protocol},
		{"530 alone", 530, "", Authentication},
		{"550 alone", 550, "", Other},
		{"551 alone", 551, "", BadMailbox},
		{"552 alone", 552, "", Quota},
		{"554 alone", 554, "", Other},
		{"malformed enhanced code", 550, "5.x.1", Other},
		{"enhanced code of class 3", 550, "3.1.1", Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Of(tt.code, tt.enhanced); got != tt.want {
				t.Errorf("Of(%d, %q) = %q, want %q", tt.code, tt.enhanced, got, tt.want)
			}
			if got := Of(tt.code, tt.enhanced); got != "" && !Valid(got) {
				t.Errorf("Of(%d, %q) = %q, not a category", tt.code, tt.enhanced, got)
			}
		})
	}
}

func TestBounded(t *testing.T) {
	for _, c := range All {
		if Bounded(c) != c {
			t.Errorf("Bounded(%q) = %q", c, Bounded(c))
		}
	}
	for _, c := range []string{"", "Bad-Mailbox", "throttled", "x\n"} {
		if Bounded(c) != Other {
			t.Errorf("Bounded(%q) = %q, want other", c, Bounded(c))
		}
	}
}

// TestSchemaAgrees checks that #Category in the embedded schema lists
// exactly All, in the same order, so that a rule can name no category the
// program does not know and the program derives none a rule cannot name.
func TestSchemaAgrees(t *testing.T) {
	src, err := schema.FS.ReadFile("category.cue")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^\t"([a-z-]+)"( \|)?$`).FindAllSubmatch(src, -1) {
		got = append(got, string(m[1]))
	}
	if !slices.Equal(got, All) {
		t.Errorf("schema #Category lists %q, package category %q", got, All)
	}
}
