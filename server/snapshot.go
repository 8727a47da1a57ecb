// Package server runs one cuemta process: it turns a config path into an
// immutable Snapshot (validated config, compiled rules, loaded keys) and
// runs on the current snapshot the listeners (reception, then intake),
// the spool, the delivery scheduler and the admin API, swapping in a new
// snapshot whole on reload.
package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"sync"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/vet"
)

// Snapshot is one loaded, fully validated configuration. It is never
// modified after Load returns, so it can be shared by every goroutine;
// a reload builds a new one and swaps it in whole.
type Snapshot struct {
	// Policy is the config, rules and keys; intake takes mail in under it.
	intake.Policy

	policyOnce     sync.Once
	deliveryPolicy *delivery.Policy
	// tlsRoots are delivery.tlsRoots loaded; nil: the system roots.
	tlsRoots *x509.CertPool
}

// Load builds a snapshot from the config at path ("" = embedded default).
// Every problem found at any stage is returned as config.Errors.
func Load(path string) (*Snapshot, error) {
	var cfg *config.Config
	var err error
	if path == "" {
		cfg, err = config.LoadDefault()
	} else {
		cfg, err = config.Load(path)
	}
	if err != nil {
		return nil, err
	}
	return compile(cfg)
}

func compile(cfg *config.Config) (*Snapshot, error) {
	set, err := rules.Compile(cfg)
	if err != nil {
		return nil, err
	}
	keys, err := dkim.Load(cfg)
	if err != nil {
		return nil, err
	}
	if err := vet.CheckCertificates(cfg); err != nil {
		return nil, err
	}
	roots, err := vet.LoadTLSRoots(cfg)
	if err != nil {
		return nil, err
	}
	return &Snapshot{Policy: intake.Policy{Config: cfg, Rules: set, DKIM: keys, Signing: dkim.NewSigningTable(&cfg.DKIM)}, tlsRoots: roots}, nil
}

// ErrorLines formats a load error one problem per line.
func ErrorLines(err error) []string {
	var ces config.Errors
	if errors.As(err, &ces) {
		out := make([]string, len(ces))
		for i, e := range ces {
			out[i] = e.Error()
		}
		return out
	}
	return []string{fmt.Sprint(err)}
}
