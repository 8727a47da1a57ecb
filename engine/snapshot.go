// Package engine wires cuemta together: it turns a config path into an
// immutable Snapshot (validated config, compiled rules, loaded keys) and
// runs the listeners, spool and delivery on the current snapshot.
package engine

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/rules"
	"github.com/cuemta/cuemta/vet"
)

// Snapshot is one loaded, fully validated configuration. It is never
// modified after Load returns, so it can be shared by every goroutine;
// a reload builds a new one and swaps it in whole.
type Snapshot struct {
	Config *config.Config
	Rules  *rules.Set
	DKIM   dkim.Keys
	// Generation numbers snapshots in the order they were loaded.
	Generation uint64

	policyOnce     sync.Once
	deliveryPolicy *delivery.Policy
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
	return &Snapshot{Config: cfg, Rules: set, DKIM: keys}, nil
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
