package verp

import "testing"

func TestID(t *testing.T) {
	tests := []struct {
		addr, domain, id string
		ok               bool
	}{
		{"bounce+1j1j98svv1ok2h2g@fb.example.com", "fb.example.com", "1j1j98svv1ok2h2g", true},
		{"BOUNCE+1J1J98SVV1OK2H2G@FB.Example.com", "fb.example.com", "1j1j98svv1ok2h2g", true}, // folded by a receiver
		{"bounce+1j1j98svv1ok2h2g@other.example", "fb.example.com", "", false},                 // not our domain
		{"bounce+@fb.example.com", "fb.example.com", "", false},
		{"bounce+../x@fb.example.com", "fb.example.com", "", false},
		{"news@fb.example.com", "fb.example.com", "", false},
		{"bounce+abc@fb.example.com", "", "", false}, // VERP off
		{"no-at-sign", "fb.example.com", "", false},
	}
	for _, tc := range tests {
		id, ok := ID(tc.addr, tc.domain)
		if id != tc.id || ok != tc.ok {
			t.Errorf("ID(%q, %q) = %q, %v; want %q, %v", tc.addr, tc.domain, id, ok, tc.id, tc.ok)
		}
	}
	if a := Address("1j1j98svv1ok2h2g", "fb.example.com"); a != "bounce+1j1j98svv1ok2h2g@fb.example.com" {
		t.Errorf("Address = %q", a)
	}
}
