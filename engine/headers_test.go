package engine

import (
	"testing"

	_ "github.com/cuemta/cuemta/internal/golden"
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
		{"add prepends, injection flattened", []rules.Header{{Name: "X-Pool", Value: "warm\r\nBcc: evil@example.com"}}, []string{"Subject"},
			"X-Pool: warm  Bcc: evil@example.com\r\nReceived: from a\r\n by b\r\nX-Tenant: free\r\nx-tenant: again\r\n\r\nbody X-Tenant: stays\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(rewriteHeader([]byte(msg), tt.add, tt.remove)); got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
