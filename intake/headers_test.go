package intake

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	_ "github.com/cuemta/cuemta/internal/golden"
	"github.com/cuemta/cuemta/internal/msgheader"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/rules"
)

func TestRewriteHeader(t *testing.T) {
	msg := "Received: from a\r\n by b\r\nX-Tenant: free\r\nSubject: hi\r\nx-tenant: again\r\n\r\nbody X-Tenant: stays\r\n"
	tests := []struct {
		name   string
		add    []rules.Header
		remove []string
		want   string
	}{
		{"nothing", nil, nil, msg},
		{"remove all occurrences, any case", nil, []string{"X-TENANT"},
			"Received: from a\r\n by b\r\nSubject: hi\r\n\r\nbody X-Tenant: stays\r\n"},
		{"remove folded field", nil, []string{"Received"},
			"X-Tenant: free\r\nSubject: hi\r\nx-tenant: again\r\n\r\nbody X-Tenant: stays\r\n"},
		{"add prepends in order, name as spelt", []rules.Header{{Name: "X-CUEMTA-pool", Value: "warm"}, {Name: "Message-ID", Value: "<a@b>"}}, nil,
			"X-CUEMTA-pool: warm\r\nMessage-ID: <a@b>\r\n" + msg},
		{"a long value is folded", []rules.Header{{Name: "X-Note", Value: strings.Repeat("word ", 20) + "end"}}, nil,
			"X-Note: " + strings.TrimSuffix(strings.Repeat("word ", 13), " ") + "\r\n " + strings.TrimSuffix(strings.Repeat("word ", 7), " ") + " end\r\n" + msg},
		{"add prepends, injection flattened", []rules.Header{{Name: "X-Pool", Value: "warm\r\nBcc: evil@example.com"}}, []string{"Subject"},
			"X-Pool: warm  Bcc: evil@example.com\r\nReceived: from a\r\n by b\r\nX-Tenant: free\r\nx-tenant: again\r\n\r\nbody X-Tenant: stays\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := msgheader.Parse([]byte(msg))
			if err != nil {
				t.Fatal(err)
			}
			if err := rewriteHeader(m, tt.add, tt.remove); err != nil {
				t.Fatal(err)
			}
			if got := string(m.Bytes()); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestStorageReply(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		code     int
		enhanced string
	}{
		{"disk full", fmt.Errorf("spool: write batch: %w", queue.ErrNoSpace), 452, "4.3.1"},
		{"I/O error", fmt.Errorf("spool: fsync: %w", queue.ErrStorage), 451, "4.3.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := StorageReply(tt.err)
			if r.Code != tt.code || r.Enhanced != tt.enhanced || !errors.Is(r, tt.err) {
				t.Errorf("got %d %s (cause %v), want %d %s", r.Code, r.Enhanced, r.Cause, tt.code, tt.enhanced)
			}
		})
	}
}
