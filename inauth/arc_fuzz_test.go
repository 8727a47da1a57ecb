package inauth

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/delivery/mx"
	"github.com/cuemta/cuemta/dkim"
)

// noDNS answers every query with a temporary failure.
type noDNS struct{}

var errNoDNS = errors.New("no DNS in this test")

func (noDNS) LookupTXT(context.Context, string) ([]string, error)      { return nil, errNoDNS }
func (noDNS) LookupHost(context.Context, string) ([]netip.Addr, error) { return nil, errNoDNS }
func (noDNS) LookupMX(context.Context, string) (*mx.Result, error)     { return nil, errNoDNS }
func (noDNS) LookupPTR(context.Context, netip.Addr) ([]string, time.Duration, error) {
	return nil, 0, errNoDNS
}

// FuzzVerifyARC: any header section, however malformed, gives a result
// and never a panic; without keys nothing passes, a chain is at most 50
// sets long, and "none" means the message has no ARC field at all.
func FuzzVerifyARC(f *testing.F) {
	set := "ARC-Seal: i=1; cv=none; a=rsa-sha256; d=x.example; s=s; b=AA==\r\n" +
		"ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=x.example; s=s; h=from:to; bh=AA==; b=AA==\r\n" +
		"ARC-Authentication-Results: i=1; x.example; spf=pass\r\n"
	for _, seed := range []string{
		set + "From: a@b.example\r\n\r\nbody\r\n",
		strings.ReplaceAll(set, "i=1", "i=2") + set + "From: a@b.example\r\n\r\n",
		"ARC-Seal: i=51; b=\r\n\r\n",
		"ARC-Seal:\r\n i=1;;; b=;b=\r\n\r\n",
		"arc-message-signature: i=1; l=5; h=arc-seal\r\nFrom: x\r\n\r\n",
		"From: a@b.example\r\n\r\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		got := verifyARC(context.Background(), newBudgeted(noDNS{}, 40), msg)
		switch got.Result {
		case ResultFail:
		case ResultNone:
			fields, _ := dkim.HeaderFields(msg)
			for _, fl := range fields {
				switch strings.ToLower(string(fl.Name)) {
				case "arc-seal", "arc-message-signature", "arc-authentication-results":
					t.Fatalf("none, but the header has %s", fl.Name)
				}
			}
		default:
			t.Fatalf("result %q without any key", got.Result)
		}
		if got.Instances < 0 || got.Instances > maxARCInstances {
			t.Fatalf("%d instances", got.Instances)
		}
	})
}
