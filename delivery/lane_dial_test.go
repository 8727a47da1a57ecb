package delivery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery/smtpclient"
)

// TestOpportunisticFallbackIsRemembered: when the STARTTLS handshake
// fails under an opportunistic policy, the lane redials in plaintext at
// once and keeps using plaintext for the site (RFC 7435) instead of
// failing the handshake on every connection.
func TestOpportunisticFallbackIsRemembered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.cue")
	if err := os.WriteFile(path, []byte(`profiles: default: tls: "opportunistic"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var policies []string
	refused := &smtpclient.Reply{Code: 421, Enhanced: "4.7.0", Text: "go away", Stage: "greeting"}
	e := New(Options{
		Policy: func() *Policy { return &Policy{Config: cfg, Generation: 1} },
		Dial: func(_ context.Context, o smtpclient.Options) (*smtpclient.Conn, error) {
			policies = append(policies, o.TLS)
			if o.TLS == "opportunistic" {
				return nil, &smtpclient.TLSError{Err: errors.New("handshake failure")}
			}
			return nil, refused // the plaintext session is the site speaking
		},
	})
	l := newLane(&site{sched: e, key: "mx:mx.example.net", lanes: map[string]*lane{}},
		&hop{key: "mx:mx.example.net", hosts: []string{"192.0.2.25"}, port: "25", domain: "example.net"}, "default", "default")

	for round, want := range [][]string{{"opportunistic", "none"}, {"none"}} {
		policies = nil
		if _, _, err := l.dial(context.Background(), nil); !errors.Is(err, refused) {
			t.Fatalf("round %d: dial error = %v, want the plaintext server's reply", round, err)
		}
		if len(policies) != len(want) || policies[0] != want[0] || policies[len(policies)-1] != want[len(want)-1] {
			t.Errorf("round %d: TLS policies tried %v, want %v", round, policies, want)
		}
	}
}

// TestSmarthostGetsAuthAndTLS: the "*" route is dialled with the
// smarthost's TLS policy and credentials, other routes without them.
func TestSmarthostGetsAuthAndTLS(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.cue")
	src := `routes: {"*": "smtp.example.com:587", "partner.example": "192.0.2.7:25"}
smarthost: {username: "app1", password: "secret", tls: "required"}
`
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []smtpclient.Options
	e := New(Options{
		Policy: func() *Policy { return &Policy{Config: cfg, Generation: 1} },
		Dial: func(_ context.Context, o smtpclient.Options) (*smtpclient.Conn, error) {
			got = append(got, o)
			return nil, &smtpclient.Reply{Code: 421, Text: "busy", Stage: "greeting"}
		},
	})
	for _, h := range []*hop{
		{key: "route:smtp.example.com:587", hosts: []string{"192.0.2.5"}, port: "587", static: true, domain: "any.example"},
		{key: "route:192.0.2.7:25", hosts: []string{"192.0.2.7"}, port: "25", static: true, domain: "partner.example"},
	} {
		l := newLane(&site{sched: e, key: h.key, lanes: map[string]*lane{}}, h, "default", "default")
		l.dial(context.Background(), nil)
	}
	if len(got) != 2 {
		t.Fatalf("%d dials, want 2", len(got))
	}
	if a := got[0].Auth; a == nil || a.Username != "app1" || a.Password != "secret" || got[0].TLS != "required" || got[0].Addr != "192.0.2.5:587" {
		t.Errorf("smarthost dial = %+v (auth %+v), want AUTH app1 over required TLS to 192.0.2.5:587", got[0], got[0].Auth)
	}
	if got[1].Auth != nil || got[1].TLS == "required" {
		t.Errorf("a plain route got the smarthost's settings: %+v", got[1])
	}
}
