// Package vet checks configurations for `cuemta vet`: each one goes
// through the stages a running server builds its snapshot with (see
// server.Load), and every problem of every stage is reported, one line
// each, as file:line:col: message.
//
// The stages are: the CUE config with its semantic checks (package
// config), the CEL rules (package rules), then the files the config names
// (DKIM keys, read and parsed by package dkim, and the listeners' TLS
// certificates and keys). Offline, the last stage lists those files as
// skipped instead of reading them, so a config can be vetted where its
// secrets are not (a CI runner, a build host): the check is the same code
// path with the reading left out, and a skipped file is neither a pass
// nor a failure.
package vet

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/dkim"
	"github.com/cuemta/cuemta/rules"
)

// Options are vet's settings.
type Options struct {
	// Offline skips reading the files the config names (DKIM keys, TLS
	// certificates and keys); Report.Skipped lists them.
	Offline bool
}

// Report is what vet found.
type Report struct {
	// Problems are the config errors, file:line:col: message; vet fails
	// when there is any.
	Problems []string
	// Skipped are the files not read offline, one line each. They do not
	// make vet fail.
	Skipped []string
	// Notes explain how a valid config behaves where it is easy to
	// misread (a route for a domain not in relay.domains); they do not
	// make vet fail.
	Notes []string
}

// OK reports whether vet passed.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Run vets each path: a directory holding a CUE package, a .cue file, or
// "dir/..." for every directory below dir that holds .cue files, each a
// config.
func Run(paths []string, opts Options) Report {
	var r Report
	for _, p := range paths {
		dirs, err := expand(p)
		if err != nil {
			r.Problems = append(r.Problems, err.Error())
			continue
		}
		for _, d := range dirs {
			problems, skipped, notes := check(d, opts)
			r.Problems = append(r.Problems, problems...)
			r.Skipped = append(r.Skipped, skipped...)
			r.Notes = append(r.Notes, notes...)
		}
	}
	return r
}

// check runs the stages on one config. A config that does not load stops
// there; the rules and the files are checked both, so that one run
// reports them all, in file order.
func check(path string, opts Options) (problems, skipped, notes []string) {
	cfg, err := config.Load(path)
	if err != nil {
		return errorLines(err), nil, nil
	}
	if n := cfg.Notes(); len(n) > 0 {
		notes = errorLines(n)
	}
	var errs []error
	if _, err := rules.Compile(cfg); err != nil {
		errs = append(errs, err)
	}
	if opts.Offline {
		skipped = skippedFiles(cfg)
	} else {
		if _, err := dkim.Load(cfg); err != nil {
			errs = append(errs, err)
		}
		if err := CheckCertificates(cfg); err != nil {
			errs = append(errs, err)
		}
		if _, err := LoadTLSRoots(cfg); err != nil {
			errs = append(errs, err)
		}
	}
	return errorLines(errs...), skipped, notes
}

// skippedFiles lists what the file stage would have read, in the order it
// reads them (keys, then listeners, by name).
func skippedFiles(cfg *config.Config) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(cfg.DKIM.Keys)) {
		out = append(out, fmt.Sprintf("skipped (offline): dkim key %q file %s not read", name, cfg.DKIM.Keys[name].KeyFile))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners)) {
		if t := cfg.Listeners[name].TLS; t != nil {
			out = append(out,
				fmt.Sprintf("skipped (offline): listener %q TLS certificate file %s not read", name, t.Cert),
				fmt.Sprintf("skipped (offline): listener %q TLS key file %s not read", name, t.Key))
		}
	}
	if f := cfg.Delivery.TLSRoots; f != "" {
		out = append(out, fmt.Sprintf("skipped (offline): delivery.tlsRoots file %s not read", f))
	}
	return out
}

// LoadTLSRoots reads delivery.tlsRoots: the CA certificates trusted
// instead of the system roots when delivery verifies a certificate. nil
// (no error) when the field is empty: the system roots. A file that
// cannot be read or holds no certificate is an error, never a silent
// fall back to the system roots.
func LoadTLSRoots(cfg *config.Config) (*x509.CertPool, error) {
	f := cfg.Delivery.TLSRoots
	if f == "" {
		return nil, nil
	}
	fail := func(format string, args ...any) error {
		return config.Errors{{Pos: cfg.PosOf("delivery.tlsRoots"), Msg: "delivery.tlsRoots: " + fmt.Sprintf(format, args...)}}
	}
	pemData, err := os.ReadFile(f)
	if err != nil {
		return nil, fail("%v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fail("%s holds no PEM CERTIFICATE block", f)
	}
	return pool, nil
}

// CheckCertificates loads every listener's TLS certificate and key. The
// server runs it too, before it listens and on every reload (server.Load),
// so a config vet passes is one the server loads, and a missing or
// mismatched file is a load error rather than a listener that fails later.
func CheckCertificates(cfg *config.Config) error {
	var errs config.Errors
	for _, name := range slices.Sorted(maps.Keys(cfg.Listeners)) {
		l := cfg.Listeners[name]
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

// errorLines formats errors one problem per line, positioned problems in
// file order.
func errorLines(errs ...error) []string {
	var all config.Errors
	var other []string
	for _, err := range errs {
		var ces config.Errors
		if errors.As(err, &ces) {
			all = append(all, ces...)
		} else {
			other = append(other, fmt.Sprint(err))
		}
	}
	slices.SortStableFunc(all, func(a, b config.Error) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	out := make([]string, 0, len(all)+len(other))
	for _, e := range all {
		out = append(out, e.Error())
	}
	return append(out, other...)
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
