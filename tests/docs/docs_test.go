// Package docs keeps README.md and docs/ in step with the tree: the README
// stays short, its command table names every subcommand, its layout table
// names every package and top-level directory (and nothing that is gone),
// and docs/README.md lists every file in docs/.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	_ "github.com/cuemta/cuemta/internal/golden" // defines -update, which go test ./... -update passes to every package
)

const root = "../.."

// maxReadmeLines is the README's budget; the rest belongs in docs/.
const maxReadmeLines = 200

func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReadmeLength(t *testing.T) {
	if n := strings.Count(readme(t), "\n"); n > maxReadmeLines {
		t.Errorf("README.md has %d lines; keep it to %d and move detail to docs/", n, maxReadmeLines)
	}
}

// TestReadmeCommands checks that every entry of the command table in
// cmd/cuemta/main.go appears in the README as `cuemta NAME`.
func TestReadmeCommands(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(root, "cmd/cuemta/main.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "commands" || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		for _, el := range lit.Elts {
			if kv, ok := el.(*ast.KeyValueExpr); ok {
				if k, ok := kv.Key.(*ast.BasicLit); ok {
					if s, err := strconv.Unquote(k.Value); err == nil {
						names = append(names, s)
					}
				}
			}
		}
		return false
	})
	if len(names) == 0 {
		t.Fatal("found no `commands` table in cmd/cuemta/main.go")
	}
	text := readme(t)
	for _, n := range names {
		if !strings.Contains(text, "`cuemta "+n) {
			t.Errorf("README.md's command table does not show `cuemta %s`", n)
		}
	}
}

// TestReadmeLayout checks the layout table against `go list ./...` and
// the top-level directories.
func TestReadmeLayout(t *testing.T) {
	text := readme(t)
	_, table, ok := strings.Cut(text, "\n## Layout\n")
	if !ok {
		t.Fatal("README.md has no ## Layout section")
	}
	if i := strings.Index(table, "\n## "); i >= 0 {
		table = table[:i]
	}
	// The paths named in the table's first column.
	listed := map[string]bool{}
	code := regexp.MustCompile("`([^`]+)`")
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			listed[m[1]] = true
		}
	}
	// Paths named in the job column count too (`bench/smtpload`, ...).
	for _, m := range code.FindAllStringSubmatch(table, -1) {
		if _, err := os.Stat(filepath.Join(root, m[1])); err == nil && !strings.Contains(m[1], " ") {
			listed[m[1]] = true
		}
	}

	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(abs, dir)
		if err != nil {
			t.Fatal(err)
		}
		if !listed[filepath.ToSlash(rel)] {
			t.Errorf("package %s is not in README.md's layout table", rel)
		}
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || (strings.HasPrefix(name, ".") && name != ".ci") || ignored(name) {
			continue
		}
		if !listed[name] && !slices.ContainsFunc(mapKeys(listed), func(p string) bool { return strings.HasPrefix(p, name+"/") }) {
			t.Errorf("top-level directory %s is not in README.md's layout table", name)
		}
	}
	for p := range listed {
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("README.md's layout table names %s, which does not exist", p)
		}
	}
}

// ignored reports whether git ignores a top-level path (a spool or build
// output left in the checkout).
func ignored(name string) bool {
	cmd := exec.Command("git", "check-ignore", "-q", name)
	cmd.Dir = root
	return cmd.Run() == nil
}

func mapKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDocsIndex checks that docs/README.md links every file in docs/.
func TestDocsIndex(t *testing.T) {
	index, err := os.ReadFile(filepath.Join(root, "docs/README.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "docs/*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if name != "README.md" && !strings.Contains(string(index), "("+name+")") {
			t.Errorf("docs/README.md does not list %s", name)
		}
	}
}
