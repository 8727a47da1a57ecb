package server

import "testing"

// BenchmarkLoadDefault is the cost of a reload of the embedded default
// config (every built-in ISP profile and its rules): CUE load, unify,
// validate, decode, checks, CEL compilation and DKIM keys. The swap that
// follows is a pointer store and one reception server per listener.
func BenchmarkLoadDefault(b *testing.B) {
	for b.Loop() {
		if _, err := Load(""); err != nil {
			b.Fatal(err)
		}
	}
}
