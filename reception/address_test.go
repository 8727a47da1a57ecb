package reception

import (
	"errors"
	"testing"
)

func TestCheckMailbox(t *testing.T) {
	tests := []struct {
		addr   string
		utf8   bool
		domain string
		err    error
	}{
		{"bob@example.com", false, "example.com", nil},
		{"Bob.Smith+tag@Mail.Example.COM", false, "mail.example.com", nil},
		{"john..doe@example.com", false, "example.com", nil},
		{"bob@[192.0.2.1]", false, "[192.0.2.1]", nil},
		{"bob@[IPv6:2001:DB8::1]", false, "[IPv6:2001:db8::1]", nil},
		{"bob@localhost", false, "localhost", nil},
		{"jöran@bücher.example", true, "xn--bcher-kva.example", nil},
		{"jöran@example.com", false, "", errAddrNonASCII},
		{"bob@bücher.example", false, "", errAddrNonASCII},
		{"bob@exa_mple.com", false, "", errAddrSyntax},
		{"bob@-example.com", false, "", errAddrSyntax},
		{"bob@example-.com", false, "", errAddrSyntax},
		{"bob@example..com", false, "", errAddrSyntax},
		{"bob@example.com.", false, "", errAddrSyntax},
		{"bob@[1.2.3]", false, "", errAddrSyntax},
		{"bob@[IPv6:1.2.3.4]", false, "", errAddrSyntax},
		{"bob@[192.0.2.1", false, "", errAddrSyntax},
		{"bob@" + string(make([]byte, 64)), false, "", errAddrSyntax},
		{"@example.com", false, "", errAddrSyntax},
		{"bob@", false, "", errAddrSyntax},
		{"bob@evil.test@example.com", false, "", errAddrQuoted},
		{"john doe@example.com", false, "", errAddrQuoted},
	}
	for _, tt := range tests {
		d, err := checkMailbox(tt.addr, tt.utf8)
		if d != tt.domain || !errors.Is(err, tt.err) {
			t.Errorf("checkMailbox(%q, %v) = %q, %v; want %q, %v", tt.addr, tt.utf8, d, err, tt.domain, tt.err)
		}
	}
}
