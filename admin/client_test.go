package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
)

// clientFor returns a Client for the harness's server.
func (h *harness) client(token string) *Client {
	h.t.Helper()
	c, err := NewClient(strings.TrimPrefix(h.http.URL, "http://"), token, "cli:tester")
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// TestClientAgainstServer drives the real server with the client: reads
// decode, a state-changing call passes the server's CSRF checks and is
// recorded with the client's actor, and an error reply is an *APIError
// with the server's status, message and detail.
func TestClientAgainstServer(t *testing.T) {
	h := newHarnessCfg(t, config.Admin{Addr: "127.0.0.1:0", Token: "s3cret"})
	c := h.client("s3cret")
	ctx := context.Background()

	var st Status
	raw, err := c.Do(ctx, http.MethodGet, "/api/v1/status", nil, &st)
	if err != nil || st.Hostname == "" || !strings.Contains(string(raw), `"hostname"`) {
		t.Fatalf("status: %+v %s %v", st, raw, err)
	}
	if _, err := c.Do(ctx, http.MethodPost, "/api/v1/suspensions",
		map[string]string{"scope": "site", "key": "gmail", "duration": "1h", "reason": "test"}, nil); err != nil {
		t.Fatalf("suspend: %v", err)
	}
	if a := h.Actions(); len(a) != 1 || a[0].Action != ActionSuspend || a[0].Actor != "cli:tester" {
		t.Errorf("actions %+v", a)
	}

	_, err = c.Do(ctx, http.MethodGet, "/api/v1/messages/nope", nil, nil)
	var e *APIError
	if !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Msg == "" || len(e.Body) == 0 {
		t.Errorf("unknown message: %#v", err)
	}

	_, err = h.client("wrong").Do(ctx, http.MethodGet, "/api/v1/status", nil, nil)
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || !strings.Contains(e.Error(), "bearer token") {
		t.Errorf("wrong token: %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := NewClient(addr, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Do(context.Background(), http.MethodGet, "/api/v1/status", nil, nil)
	var u *UnreachableError
	if !errors.As(err, &u) || u.Addr != addr || !strings.Contains(err.Error(), "is `cuemta serve` running?") {
		t.Errorf("%v", err)
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:25": "127.0.0.1:25", ":25": "127.0.0.1:25", "[::]:25": "[::1]:25",
		"127.0.0.1:2525": "127.0.0.1:2525", "mail.example:587": "mail.example:587",
	} {
		if got, err := DialAddr(in); err != nil || got != want {
			t.Errorf("DialAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := DialAddr("nope"); err == nil {
		t.Error("no error for an address without a port")
	}
}
