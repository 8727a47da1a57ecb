package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestSuppressionDefaultsAndValues(t *testing.T) {
	for _, tc := range []struct {
		name, src  string
		categories []string
		expire     time.Duration
	}{
		{"default", `listeners: mx: addr: "127.0.0.1:2525"`, []string{"bad-mailbox", "bad-domain", "inactive-mailbox"}, 0},
		{"set", "listeners: mx: addr: \"127.0.0.1:2525\"\nsuppression: {categories: [\"quota\"], expireAfter: \"720h\"}", []string{"quota"}, 720 * time.Hour},
		{"none", "listeners: mx: addr: \"127.0.0.1:2525\"\nsuppression: categories: []", []string{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.cue")
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Suppression.Categories, tc.categories) || cfg.Suppression.ExpireAfter.D() != tc.expire {
				t.Errorf("suppression = %+v, want %v and %v", cfg.Suppression, tc.categories, tc.expire)
			}
		})
	}
}
