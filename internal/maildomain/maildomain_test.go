package maildomain

import "testing"

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"example.com":           "example.com",
		"Example.COM":           "example.com",
		"bücher.example":        "xn--bcher-kva.example",
		"BÜCHER.example":        "xn--bcher-kva.example",
		"xn--bcher-kva.example": "xn--bcher-kva.example",
		"XN--BCHER-KVA.Example": "xn--bcher-kva.example",
		"ex ample.com":          "",
		"-a.example":            "",
		"a..example":            "",
		"":                      "",
	} {
		got, err := Normalize(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if got := Address("Ü.Ser@Bücher.Example"); got != "Ü.Ser@xn--bcher-kva.example" {
		t.Errorf("Address: %q", got)
	}
	if got := Address("u@[192.0.2.1]"); got != "u@[192.0.2.1]" {
		t.Errorf("Address of a literal: %q", got)
	}
}
