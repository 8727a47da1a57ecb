package intake

import (
	"strings"
	"testing"

	"github.com/cuemta/cuemta/queue"
)

type listOf map[string]bool // "tenant/addr"

func (l listOf) Suppressed(tenant, addr string) bool { return l[tenant+"/"+addr] || l["/"+addr] }

func TestDropSuppressed(t *testing.T) {
	list := listOf{"/all@example.com": true, "acme/acme-only@example.com": true}
	for _, tc := range []struct {
		name, tenant string
		rcpts        []string
		wantKept     string
		wantDropped  string
		wantRefused  bool
	}{
		{"none suppressed", "acme", []string{"a@example.com", "b@example.com"}, "a@example.com,b@example.com", "", false},
		{"tenant and global dropped", "acme", []string{"a@example.com", "acme-only@example.com", "all@example.com"}, "a@example.com", "acme-only@example.com,all@example.com", false},
		{"other tenant keeps acme's", "other", []string{"acme-only@example.com"}, "acme-only@example.com", "", false},
		{"all suppressed refuses", "acme", []string{"acme-only@example.com", "all@example.com"}, "acme-only@example.com,all@example.com", "acme-only@example.com,all@example.com", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := &queue.Envelope{Tenant: tc.tenant}
			for _, r := range tc.rcpts {
				env.Recipients = append(env.Recipients, queue.Recipient{Addr: r})
			}
			dropped, err := DropSuppressed(list, env)
			var kept []string
			for _, r := range env.Recipients {
				kept = append(kept, r.Addr)
			}
			if strings.Join(kept, ",") != tc.wantKept || strings.Join(dropped, ",") != tc.wantDropped {
				t.Errorf("kept %v dropped %v, want %s and %s", kept, dropped, tc.wantKept, tc.wantDropped)
			}
			if (err != nil) != tc.wantRefused {
				t.Fatalf("err = %v, want refused %v", err, tc.wantRefused)
			}
			if r := SuppressedReply(); err != nil && !strings.HasPrefix(err.Error(), "550 5.7.1 Recipient suppressed") || r.Code != 550 || r.Enhanced != "5.7.1" {
				t.Errorf("refusal %q", err)
			}
		})
	}
	if d, err := DropSuppressed(nil, &queue.Envelope{Recipients: []queue.Recipient{{Addr: "all@example.com"}}}); d != nil || err != nil {
		t.Errorf("nil list dropped %v, %v", d, err)
	}
}
