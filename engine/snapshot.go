// Package engine wires cuemta together: it turns a config path into an
// immutable Snapshot (validated config, compiled rules, loaded keys) and
// runs the listeners, spool and delivery on the current snapshot.
package engine

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/delivery"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/rules"
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
	if err := checkCertificates(cfg); err != nil {
		return nil, err
	}
	return &Snapshot{Config: cfg, Rules: set, DKIM: keys}, nil
}

// Vet loads each path and returns every problem found, one line each in
// the form file:line:col: message. A path ending in "/..." stands for
// every directory below it that holds .cue files, each a config.
func Vet(paths []string) []string {
	var lines []string
	for _, p := range paths {
		dirs, err := expand(p)
		if err != nil {
			lines = append(lines, err.Error())
			continue
		}
		for _, d := range dirs {
			if _, err := Load(d); err != nil {
				lines = append(lines, ErrorLines(err)...)
			}
		}
	}
	return lines
}

// expand resolves a "dir/..." pattern into the directories below dir
// that hold .cue files (cue.mod, testdata and hidden directories aside).
func expand(p string) ([]string, error) {
	root, ok := strings.CutSuffix(p, "/...")
	if !ok {
		return []string{p}, nil
	}
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "cue.mod" || name == "testdata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".cue") {
			if dir := filepath.Dir(path); len(dirs) == 0 || dirs[len(dirs)-1] != dir {
				dirs = append(dirs, dir)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("%s: no .cue files below %s", p, root)
	}
	return dirs, nil
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

// checkCertificates loads every listener's TLS certificate and key, so
// that a missing or mismatched file is a load (and reload) error rather
// than a listener that fails later.
func checkCertificates(cfg *config.Config) error {
	var errs config.Errors
	for name, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		if _, err := tls.LoadX509KeyPair(l.TLS.Cert, l.TLS.Key); err != nil {
			errs = append(errs, config.Error{Pos: cfg.PosOf("listeners." + config.Label(name) + ".tls"),
				Msg: fmt.Sprintf("listener %q: TLS certificate: %v", name, err)})
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
