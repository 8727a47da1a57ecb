// Package config loads a cuemta configuration: CUE files are unified with
// the embedded schema, validated (every problem reported at once, each
// with its file:line:col), decoded into typed Go values and checked for
// policy that could never work. The result is an immutable *Config.
//
// The pipeline is: load the user's package (with the embedded schema and
// built-in ISP profiles overlaid as importable packages) → unify with
// #Config → validate concretely → decode → semantic checks. Rules' CEL is
// compiled by package rules on top of this.
package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
	cueerrors "cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/token"

	"github.com/cuemta/cuemta/isp"
	"github.com/cuemta/cuemta/schema"
)

// builtinMarker is the path segment that identifies the overlaid built-in
// packages in positions.
const builtinMarker = "/cue.mod/pkg/cuemta.dev/"

// Load reads the configuration at path: a directory holding one CUE
// package (or package-less files), or a single .cue file.
func Load(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, Errors{{Msg: fmt.Sprintf("cannot read config %s: %v", path, unwrapPathError(err))}}
	}
	dir, files := abs, []string(nil)
	if st.IsDir() {
		files, err = cueFiles(abs)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if len(files) == 0 {
			return nil, Errors{{Msg: fmt.Sprintf("%s: no .cue files in this directory", path)}}
		}
	} else {
		dir, files = filepath.Dir(abs), []string{abs}
	}
	return loadFiles(dir, files, nil)
}

// LoadSource loads a configuration held in memory, as if it were the file
// name in the current directory (used for the embedded default config).
func LoadSource(name string, src []byte) (*Config, error) {
	dir, err := os.Getwd()
	if err != nil {
		dir = os.TempDir()
	}
	// A directory of its own, so that no cue.mod of the working directory
	// gets in the way.
	dir = filepath.Join(dir, ".cuemta-embedded")
	file := filepath.Join(dir, name)
	cfg, err := loadFiles(dir, []string{file}, map[string]load.Source{file: load.FromBytes(src)})
	if err != nil {
		return nil, err
	}
	cfg.Files = []string{"embedded:" + name}
	return cfg, nil
}

func cueFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".cue") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		regular := e.Type().IsRegular()
		if e.Type()&os.ModeSymlink != 0 {
			// A Kubernetes ConfigMap mounts each key as a symlink into a
			// hidden ..data directory: follow it to a regular file.
			fi, err := os.Stat(filepath.Join(dir, e.Name()))
			regular = err == nil && fi.Mode().IsRegular()
		}
		if regular {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	return files, nil
}

func loadFiles(dir string, files []string, extra map[string]load.Source) (*Config, error) {
	overlay, err := builtinOverlay(dir)
	if err != nil {
		return nil, err
	}
	for k, v := range extra {
		overlay[k] = v
	}
	lc := &load.Config{Dir: dir, Overlay: overlay}
	args := make([]string, len(files))
	for i, f := range files {
		args[i] = f
	}
	insts := load.Instances(args, lc)
	if len(insts) != 1 {
		return nil, fmt.Errorf("config: expected one CUE instance, got %d", len(insts))
	}
	if insts[0].Err != nil {
		return nil, fromCUE(insts[0].Err)
	}
	ctx := cuecontext.New()
	user := ctx.BuildInstance(insts[0])
	if err := user.Err(); err != nil {
		return nil, fromCUE(err)
	}
	sinst := load.Instances([]string{schema.ImportPath}, lc)[0]
	if sinst.Err != nil {
		return nil, fmt.Errorf("config: embedded schema: %w", sinst.Err)
	}
	sval := ctx.BuildInstance(sinst)
	if err := sval.Err(); err != nil {
		return nil, fmt.Errorf("config: embedded schema: %w", err)
	}
	root := sval.LookupPath(cue.MakePath(cue.Def("Config"))).Unify(user)
	if err := root.Validate(cue.Concrete(true), cue.Final()); err != nil {
		return nil, fromCUE(err)
	}
	cfg := &Config{}
	if err := root.Decode(cfg); err != nil {
		return nil, fromCUE(err)
	}
	cfg.value = root
	cfg.wd = workingDir() // positions found later are shown as at load time
	cfg.dir = dir
	cfg.base = sval.LookupPath(cue.MakePath(cue.Def("BaseProfile")))
	cfg.relay = sval.LookupPath(cue.MakePath(cue.Def("RelayDefaults")))
	cfg.Files = files
	cfg.annotate()
	if errs := cfg.check(); len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return cfg, nil
}

// builtinOverlay places the embedded schema and ISP profiles where CUE's
// loader finds imported packages, and a module file if the user has none.
func builtinOverlay(dir string) (map[string]load.Source, error) {
	ov := map[string]load.Source{}
	add := func(fsys fs.FS, importPath string) error {
		names, err := fs.Glob(fsys, "*.cue")
		if err != nil {
			return err
		}
		for _, n := range names {
			b, err := fs.ReadFile(fsys, n)
			if err != nil {
				return err
			}
			ov[filepath.Join(dir, "cue.mod", "pkg", importPath, n)] = load.FromBytes(b)
		}
		return nil
	}
	if err := add(schema.FS, schema.ImportPath); err != nil {
		return nil, fmt.Errorf("config: embedded schema: %w", err)
	}
	if err := add(isp.FS, isp.ImportPath); err != nil {
		return nil, fmt.Errorf("config: embedded ISP profiles: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cue.mod", "module.cue")); err != nil {
		ov[filepath.Join(dir, "cue.mod", "module.cue")] = load.FromString("module: \"cuemta.local/config\"\nlanguage: version: \"v0.12.0\"\n")
	}
	return ov, nil
}

// raw is one CUE error before it is explained.
type raw struct {
	path []string
	msg  string
	pos  Pos
}

// fromCUE turns CUE's errors into positioned config errors, preferring a
// position in the user's files over one in the embedded schema.
func fromCUE(err error) Errors {
	var all []raw
	var disjunctions [][]string
	for _, e := range cueerrors.Errors(err) {
		format, args := e.Msg()
		msg := fmt.Sprintf(format, args...)
		if msg == "" {
			// Some errors (an unterminated string, from the scanner) keep
			// their text only in Error(), with the position before it.
			msg = e.Error()
			if i := strings.Index(msg, ": "); i >= 0 && strings.Contains(msg[:i], ".cue") {
				msg = msg[i+2:]
			}
		}
		if strings.Contains(msg, "errors in empty disjunction") {
			disjunctions = append(disjunctions, e.Path())
			continue
		}
		all = append(all, raw{e.Path(), msg, pickPos(e)})
	}
	// A value that fits neither a type nor its schema default fails both
	// branches of `T | *default`; the clash with the default is noise when
	// the clash with T says what is wrong.
	isDefaultClash := func(r raw) bool {
		return (strings.HasPrefix(r.msg, "conflicting values") && !strings.Contains(r.msg, "mismatched types")) ||
			strings.HasPrefix(r.msg, "incompatible list lengths")
	}
	under := func(path, prefix []string) bool {
		return len(path) >= len(prefix) && slices.Equal(path[:len(prefix)], prefix)
	}
	drop := make([]bool, len(all))
	for _, d := range disjunctions {
		informative := false
		for _, r := range all {
			if under(r.path, d) && !isDefaultClash(r) {
				informative = true
			}
		}
		if !informative {
			continue
		}
		for i, r := range all {
			if under(r.path, d) && isDefaultClash(r) {
				drop[i] = true
			}
		}
	}
	all = mergeEnumClashes(all, drop, disjunctions)
	var out Errors
	seen := map[string]bool{}
	for i, r := range all {
		if i < len(drop) && drop[i] {
			continue
		}
		msg := explain(r.path, r.msg)
		if key := r.pos.String() + msg; !seen[key] {
			seen[key] = true
			out = append(out, Error{Pos: r.pos, Msg: msg})
		}
	}
	if len(out) == 0 {
		out = append(out, Error{Msg: err.Error()})
	}
	out.sort()
	return out
}

func pickPos(e cueerrors.Error) Pos {
	var cands []token.Pos
	if p := e.Position(); p.IsValid() {
		cands = append(cands, p)
	}
	cands = append(cands, e.InputPositions()...)
	for _, p := range cands {
		if p.IsValid() && !strings.Contains(p.Filename(), builtinMarker) {
			return posOf(p)
		}
	}
	for _, p := range cands {
		if p.IsValid() {
			return posOf(p)
		}
	}
	return Pos{}
}

func posOf(p token.Pos) Pos { return posIn(p, workingDir()) }

// posIn is posOf for paths shown relative to wd.
func posIn(p token.Pos, wd string) Pos {
	if !p.IsValid() {
		return Pos{}
	}
	return Pos{File: displayPath(p.Filename(), wd), Line: p.Line(), Col: p.Column()}
}

func workingDir() string {
	wd, _ := os.Getwd()
	return wd
}

// displayPath shows built-in files by their import path and user files
// relative to the working directory, so messages are short and stable.
func displayPath(name, wd string) string {
	if i := strings.Index(name, builtinMarker); i >= 0 {
		return "builtin:" + name[i+len("/cue.mod/pkg/"):]
	}
	if i := strings.Index(name, "/.cuemta-embedded/"); i >= 0 {
		return "embedded:" + name[i+len("/.cuemta-embedded/"):]
	}
	if wd != "" {
		if rel, err := filepath.Rel(wd, name); err == nil && !strings.HasPrefix(rel, "..") {
			return rel
		}
	}
	return name
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// enumClashRE is one branch of an enum (a disjunction of strings such as
// #Category or #Classification) refusing a value.
var enumClashRE = regexp.MustCompile(`^conflicting values ("[^"]*") and ("[^"]*")$`)

// mergeEnumClashes turns the one-error-per-branch of a value that fits no
// member of an enum into one error naming them all: `invalid value "spam":
// expected one of "bad-domain", "bad-mailbox", ...`. It marks the merged
// errors in drop and appends the merged one; others are left alone.
func mergeEnumClashes(all []raw, drop []bool, disjunctions [][]string) []raw {
	for _, d := range disjunctions {
		var idx []int
		var members []string
		value := ""
		for i, r := range all {
			// all grows by the merged errors, drop does not: those are
			// never dropped.
			if (i < len(drop) && drop[i]) || !slices.Equal(r.path, d) {
				continue
			}
			m := enumClashRE.FindStringSubmatch(r.msg)
			if m == nil || (value != "" && m[2] != value) {
				idx = nil
				break
			}
			value = m[2]
			idx = append(idx, i)
			members = append(members, m[1])
		}
		if len(idx) < 2 {
			continue
		}
		for _, i := range idx {
			drop[i] = true
		}
		slices.Sort(members)
		all = append(all, raw{d, "invalid value " + value + ": expected one of " + strings.Join(members, ", "), all[idx[0]].pos})
	}
	return all
}
