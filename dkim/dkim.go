// Package dkim signs outgoing mail (RFC 6376) with the keys named in the
// config. Keys are read and checked when a config snapshot is built, so a
// missing or unreadable key is a load error, never a runtime surprise.
package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/cuemta/cuemta/config"
)

// Key is one loaded signing key with its signing options.
type Key struct {
	Name     string
	Domain   string // lower case
	Selector string
	// Algorithm is the a= tag: "rsa-sha256" or "ed25519-sha256" (RFC 8463).
	Algorithm string
	signer    crypto.Signer
	// HeaderCanon and BodyCanon are "relaxed" or "simple" (RFC 6376 §3.4).
	HeaderCanon, BodyCanon string
	// HeaderKeys are the fields signed, From always among them.
	HeaderKeys []string
	plan       *signPlan // set by prepare
}

// Keys are the loaded keys by name.
type Keys map[string]*Key

// Load reads every key in the config. Problems are reported as
// config.Errors positioned at the key's definition.
func Load(cfg *config.Config) (Keys, error) {
	keys := Keys{}
	var errs config.Errors
	for name, k := range cfg.DKIM.Keys {
		signer, err := readKey(k.KeyFile)
		if err != nil {
			errs = append(errs, config.Error{Pos: cfg.PosOf("dkim.keys." + config.Label(name) + ".keyFile"), Msg: fmt.Sprintf("dkim key %q: %v", name, err)})
			continue
		}
		hc, bc, _ := strings.Cut(k.Canonicalization, "/")
		alg := "rsa-sha256"
		if _, ok := signer.(ed25519.PrivateKey); ok {
			alg = "ed25519-sha256"
		}
		key := &Key{Name: name, Domain: strings.ToLower(k.Domain), Selector: k.Selector, Algorithm: alg,
			signer: signer, HeaderCanon: hc, BodyCanon: bc, HeaderKeys: withFrom(k.Headers)}
		if err := key.prepare(); err != nil {
			errs = append(errs, config.Error{Pos: cfg.PosOf("dkim.keys." + config.Label(name)), Msg: fmt.Sprintf("dkim key %q: %v", name, err)})
			continue
		}
		keys[name] = key
	}
	// ARC signs rsa-sha256 only (RFC 8617 §4.1.3).
	for _, l := range slices.Sorted(maps.Keys(cfg.Listeners)) {
		if name := cfg.Listeners[l].Verify.ARCSeal; keys[name] != nil && keys[name].Algorithm != "rsa-sha256" {
			errs = append(errs, config.Error{Pos: cfg.PosOf("listeners." + config.Label(l) + ".verify.arcSeal"),
				Msg: fmt.Sprintf("listener %q: verify.arcSeal: dkim key %q is %s; ARC seals with RSA keys only", l, name, keys[name].Algorithm)})
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return keys, nil
}

// Sign returns the message with a DKIM-Signature header prepended.
func (k *Key) Sign(msg []byte) ([]byte, error) { return Sign(msg, []*Key{k}) }

// withFrom makes sure From is signed: RFC 6376 §5.4 requires it.
func withFrom(h []string) []string {
	for _, k := range h {
		if strings.EqualFold(k, "From") {
			return h
		}
	}
	return append([]string{"From"}, h...)
}

func readKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block found", path)
	}
	var key any
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%s: unsupported PEM block %q (want PRIVATE KEY or RSA PRIVATE KEY)", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		// RFC 8301 §3.2: verifiers must not accept keys under 1024 bits.
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("%s: RSA key of %d bits is too short (RFC 8301 requires at least 1024)", path, k.N.BitLen())
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%s: unsupported key type %T (want RSA or Ed25519)", path, key)
}
