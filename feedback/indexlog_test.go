package feedback

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// add stores and accepts message id as the server does.
func add(x *Index, id, tenant string) {
	x.Stored(id, "<"+id+"@example.com>")
	x.Accepted(id, "news@example.com", tenant, "camp-"+id)
}

func openIndex(t *testing.T, dir string, size int) (*Index, int) {
	t.Helper()
	x, skipped, err := OpenIndex(dir, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x, skipped
}

func wantIndexed(t *testing.T, x *Index, id, tenant string) {
	t.Helper()
	m, ok := x.ByMessageID("<" + id + "@example.com>")
	want := Meta{ID: id, MessageID: "<" + id + "@example.com>", From: "news@example.com", Tenant: tenant, Campaign: "camp-" + id}
	if !ok || m != want {
		t.Errorf("ByMessageID(%s) = %+v, %v; want %+v", id, m, ok, want)
	}
}

func wantForgotten(t *testing.T, x *Index, id string) {
	t.Helper()
	if m, ok := x.ByID(id); ok {
		t.Errorf("%s still indexed: %+v", id, m)
	}
	if m, ok := x.ByMessageID("<" + id + "@example.com>"); ok {
		t.Errorf("<%s@example.com> still indexed: %+v", id, m)
	}
}

// TestIndexLogSurvivesReopen: what an Index learnt is there again after
// Close and OpenIndex, Message-ID, sender, tenant and campaign; a TAB in
// a field is kept as a space rather than breaking the record.
func TestIndexLogSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	x, _ := openIndex(t, dir, 8)
	for _, id := range []string{"a", "b", "c"} {
		add(x, id, "acme")
	}
	add(x, "d", "tab\there")
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	add(x, "late", "acme") // after Close: memory only, no panic, no write

	y, skipped := openIndex(t, dir, 8)
	defer y.Close()
	if skipped != 0 {
		t.Errorf("skipped %d records of a cleanly closed log", skipped)
	}
	for _, id := range []string{"a", "b", "c"} {
		wantIndexed(t, y, id, "acme")
	}
	wantIndexed(t, y, "d", "tab here")
	wantForgotten(t, y, "late")
	if fi, err := os.Stat(filepath.Join(dir, indexLogName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("log file: %v, %v; want mode 0600 (it holds addresses)", fi, err)
	}
}

// TestIndexLogRotation: with size 4, ten messages leave two generations
// of at most four records, and a reopened Index knows exactly the last
// four messages.
func TestIndexLogRotation(t *testing.T) {
	dir := t.TempDir()
	x, _ := openIndex(t, dir, 4)
	ids := strings.Split("abcdefghij", "")
	for _, id := range ids {
		add(x, id, "acme")
	}
	x.Close()
	for name, want := range map[string]int{indexLogName: 2, indexLogName + ".1": 4} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte("\n")); n != want {
			t.Errorf("%s holds %d records, want %d", name, n, want)
		}
	}
	y, _ := openIndex(t, dir, 4)
	defer y.Close()
	for _, id := range ids[:6] {
		wantForgotten(t, y, id)
	}
	for _, id := range ids[6:] {
		wantIndexed(t, y, id, "acme")
	}
}

// TestIndexLogSkipsDamage: a record with a flipped byte and a torn last
// record (half a record, or a line longer than the read buffer) are
// skipped and counted, the others kept; a record appended after the torn
// one starts a line of its own and survives the next reopen.
func TestIndexLogSkipsDamage(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(last []byte) []byte
	}{
		{"half a record", func(last []byte) []byte { return last[:len(last)/2] }},
		{"a line past the read buffer", func([]byte) []byte { return bytes.Repeat([]byte("x"), 200<<10) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			x, _ := openIndex(t, dir, 16)
			for _, id := range []string{"a", "b", "c"} {
				add(x, id, "acme")
			}
			x.Close()
			path := filepath.Join(dir, indexLogName)
			b, _ := os.ReadFile(path)
			lines := bytes.SplitAfter(b, []byte("\n"))
			lines[1][12] ^= 0x20 // inside b's record
			b = append(bytes.Join(lines, nil), tc.tail(lines[2])...)
			os.WriteFile(path, b, 0o600)

			y, skipped := openIndex(t, dir, 16)
			if skipped != 2 {
				t.Errorf("skipped %d, want 2 (the damaged and the torn record)", skipped)
			}
			wantIndexed(t, y, "a", "acme")
			wantForgotten(t, y, "b")
			wantIndexed(t, y, "c", "acme")
			add(y, "e", "shop")
			y.Close()

			z, skipped := openIndex(t, dir, 16)
			defer z.Close()
			if skipped != 2 {
				t.Errorf("after appending: skipped %d, want 2", skipped)
			}
			wantIndexed(t, z, "e", "shop")
		})
	}
}

// TestIndexLogFlushesWithoutClose: an entry reaches the file within
// flushEvery even when the process never closes the Index (a crash).
func TestIndexLogFlushesWithoutClose(t *testing.T) {
	dir := t.TempDir()
	x, _ := openIndex(t, dir, 16)
	defer x.Close()
	add(x, "a", "acme")
	deadline := time.Now().Add(flushEvery + 5*time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, indexLogName))
		if bytes.Contains(b, []byte("<a@example.com>")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("entry not in the log after %v", flushEvery+5*time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	y, _ := openIndex(t, dir, 16) // as after kill -9: the file as it is
	defer y.Close()
	wantIndexed(t, y, "a", "acme")
}
