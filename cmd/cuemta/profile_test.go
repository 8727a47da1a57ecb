package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/cuemta/cuemta/internal/golden"
)

// TestProfileGolden compares `cuemta profile` output with
// testdata/profile/<case>.golden (go test -update rewrites them).
func TestProfileGolden(t *testing.T) {
	relay := filepath.Join("testdata", "profile", "relay.cue")
	for _, tc := range []struct {
		name string
		args []string
	}{
		// A consumer domain and its MX: the site's settings and Google's
		// provider-wide limits, each with its origin.
		{"gmail", []string{"gmail.com", "--mx", "gmail-smtp-in.l.google.com"}},
		// Without MX hosts the provider cannot be known.
		{"gmail-no-mx", []string{"gmail.com"}},
		// A Microsoft 365 tenant: its own site, the office365 provider.
		{"office365-json", []string{"--json", "contoso.com", "--mx", "contoso-com.mail.protection.outlook.com"}},
		// No profile but default: KumoMTA's defaults, from #BaseProfile.
		{"unknown", []string{"unknown.example", "--mx", "mx1.unknown.example"}},
		// A domain the config sends through the smarthost: relay defaults.
		{"smarthost", []string{"-c", relay, "example.org"}},
		// A route shown directly, for a source with a default override.
		{"route-source", []string{"-c", relay, "--source", "slow", "--route", "relay.partner.test:25"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runProfile(tc.args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			golden.Check(t, filepath.Join("testdata", "profile", tc.name+".golden"), stdout.Bytes())
		})
	}
}

func TestProfileUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"a.example", "b.example"},
		{"--route", "smtp.example:25", "a.example"},
		{"--route", "smtp.example:25", "--mx", "mx.example"},
	} {
		var stdout, stderr bytes.Buffer
		if code := runProfile(args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2 (usage)", args, code)
		}
	}
}
