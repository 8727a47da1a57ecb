package server

import (
	"slices"
	"testing"

	"github.com/cuemta/cuemta/deliverylog"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/intake"
)

// TestDKIMSignaturesLogged: the log shows the signatures the envelope
// recorded at reception, even for a key a reload has since changed; a
// record from before signatures were kept in full (a bare key name)
// takes the key's tags from the current config, without an alignment.
func TestDKIMSignaturesLogged(t *testing.T) {
	s := &Server{}
	s.snap.Store(&Snapshot{Policy: intake.Policy{DKIM: dkim.Keys{
		"main": {Name: "main", Domain: "example.com", Selector: "s2027", Algorithm: "ed25519-sha256"},
	}}})
	for _, tc := range []struct {
		name, record string
		want         []deliverylog.DKIMSignature
	}{
		{"unsigned", "", nil},
		{"recorded at reception wins over the current key", "main:example.com:s2026:rsa-sha256:relaxed,esp:esp.example:e1:ed25519-sha256:none",
			[]deliverylog.DKIMSignature{
				{Key: "main", Domain: "example.com", Selector: "s2026", Algorithm: "rsa-sha256", Aligned: "relaxed"},
				{Key: "esp", Domain: "esp.example", Selector: "e1", Algorithm: "ed25519-sha256", Aligned: "none"},
			}},
		{"old record: a bare name, the current key's tags", "main",
			[]deliverylog.DKIMSignature{{Key: "main", Domain: "example.com", Selector: "s2027", Algorithm: "ed25519-sha256"}}},
		{"old record of a key since removed", "gone", []deliverylog.DKIMSignature{{Key: "gone"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.dkimSignatures(tc.record); !slices.Equal(got, tc.want) {
				t.Errorf("dkimSignatures(%q) = %+v, want %+v", tc.record, got, tc.want)
			}
		})
	}
}
