package delivery

import (
	"testing"

	"github.com/cuemta/cuemta/smtpreply"
)

func TestGreetsAsUs(t *testing.T) {
	for _, tc := range []struct {
		greeting, hostname string
		want               bool
	}{
		{"mta.example ESMTP ready", "mta.example", true},
		{"MTA.Example. ESMTP", "mta.example.", true},
		{"mta.example", "mta.example", true},
		{"mx.example ESMTP mta.example", "mta.example", false}, // only the first word names the server
		{"mta.example.net ESMTP", "mta.example", false},
		{"localhost ESMTP", "localhost", false}, // the default: not unique
		{"localhost.localdomain ESMTP", "localhost.localdomain", false},
		{"", "mta.example", false},
	} {
		got := greetsAsUs(smtpreply.New(220, "", tc.greeting), tc.hostname)
		if got != tc.want {
			t.Errorf("greetsAsUs(%q, %q) = %v, want %v", tc.greeting, tc.hostname, got, tc.want)
		}
	}
}
