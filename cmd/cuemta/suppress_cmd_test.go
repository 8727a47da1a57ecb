package main

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/admin"
	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/suppress"
)

// startSuppressAdmin is the real admin server on a real suppression list.
func startSuppressAdmin(t *testing.T) (*suppress.Store, []string) {
	t.Helper()
	list, err := suppress.Open(t.TempDir(), suppress.Options{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { list.Close() })
	srv, err := admin.New(config.Admin{Addr: "127.0.0.1:0"}, &cliBackend{}, nil, nil,
		admin.WithClock(func() time.Time { return fixedNow }), admin.WithSuppressions(list))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	cliNow = func() time.Time { return fixedNow }
	t.Cleanup(func() { cliNow = time.Now })
	return list, []string{"--admin", strings.TrimPrefix(ts.URL, "http://")}
}

func TestSuppressCommands(t *testing.T) {
	list, args := startSuppressAdmin(t)
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"ls"}, 0, "no suppressed addresses\n"},
		{[]string{"add", "Bob@Example.com", "carol@example.com", "--reason", "asked", "--for", "720h"}, 0, "2 addresses suppressed for every tenant\n"},
		{[]string{"add", "dave@example.com", "--tenant", "acme"}, 0, "1 address suppressed for tenant acme\n"},
		{[]string{"ls"}, 0, `TENANT  ADDRESS            SOURCE    ADDED   EXPIRES  REASON
-       bob@example.com    operator  0s ago  in 30d   asked
-       carol@example.com  operator  0s ago  in 30d   asked
acme    dave@example.com   operator  0s ago  -        -
3 entries
`},
		{[]string{"ls", "--tenant", "acme"}, 0, "TENANT  ADDRESS           SOURCE    ADDED   EXPIRES  REASON\nacme    dave@example.com  operator  0s ago  -        -\n1 entry\n"},
		{[]string{"rm", "bob@example.com"}, 0, "bob@example.com removed for every tenant\n"},
		{[]string{"export"}, 0, "tenant,address,source,reason,added,expires\n" +
			",carol@example.com,operator,asked,2026-03-14T15:00:00Z,2026-04-13T15:00:00Z\n" +
			"acme,dave@example.com,operator,,2026-03-14T15:00:00Z,\n"},
	}
	for _, st := range steps {
		code, out, stderr := run(runSuppress, append(st.args, args...)...)
		if code != st.code || out != st.out {
			t.Fatalf("suppress %v: exit %d, stdout:\n%s\nstderr: %s\nwant exit %d and:\n%s", st.args, code, out, stderr, st.code, st.out)
		}
	}
	code, _, stderr := run(runSuppress, append([]string{"rm", "bob@example.com"}, args...)...)
	if code != 1 || !strings.Contains(stderr, "not on it") {
		t.Errorf("rm of a missing entry: exit %d, %s", code, stderr)
	}

	// Export then import into the same list after removing everything:
	// the round trip keeps every field.
	_, csvOut, _ := run(runSuppress, append([]string{"export"}, args...)...)
	_, jsonl, _ := run(runSuppress, append([]string{"export", "--format", "jsonl"}, args...)...)
	for _, e := range []string{"carol@example.com"} {
		list.Remove("", e)
	}
	list.Remove("acme", "dave@example.com")
	dir := t.TempDir()
	for _, f := range []struct{ name, data, format string }{{"a.csv", csvOut, "csv"}, {"a.jsonl", jsonl, "jsonl"}} {
		path := filepath.Join(dir, f.name)
		os.WriteFile(path, []byte(f.data), 0o600)
		code, out, stderr := run(runSuppress, append([]string{"import", path, "--format", f.format}, args...)...)
		if code != 0 || out != "2 entries imported\n" {
			t.Fatalf("import %s: exit %d %s %s", f.format, code, out, stderr)
		}
		if _, again, _ := run(runSuppress, append([]string{"export"}, args...)...); again != csvOut {
			t.Errorf("after %s import the export is\n%s\nwant\n%s", f.format, again, csvOut)
		}
	}

	// A file with one bad line imports nothing.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("address,reason\nnew@example.com,ok\nnot-an-address,oops\n"), 0o600)
	code, _, stderr = run(runSuppress, append([]string{"import", bad}, args...)...)
	if code != 1 || !strings.Contains(stderr, "entry 2: address") || list.Suppressed("", "new@example.com") {
		t.Errorf("bad import: exit %d, %s; new@ suppressed %v", code, stderr, list.Suppressed("", "new@example.com"))
	}
	// From stdin, sourced as import by default.
	suppressStdin = strings.NewReader("address\nstdin@example.com\n")
	t.Cleanup(func() { suppressStdin = os.Stdin })
	if code, out, stderr := run(runSuppress, append([]string{"import", "-"}, args...)...); code != 0 || out != "1 entry imported\n" {
		t.Fatalf("import -: exit %d %s %s", code, out, stderr)
	}
	if e, ok := list.Lookup("", "stdin@example.com"); !ok || e.Source != "import" {
		t.Errorf("stdin entry %+v, %v", e, ok)
	}
}
