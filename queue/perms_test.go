package queue

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
)

// TestSpoolIsPrivate: every directory of a spool is 0700 and every file
// 0600, whatever the umask allowed: the spool holds other people's mail.
func TestSpoolIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := Open(dir, Options{CompactInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(context.Background(), &Envelope{From: "a@example.org", Recipients: []Recipient{{Addr: "b@example.net"}}}, []byte("Subject: x\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 5 { // dir, LOCK, wal/, a segment, body/, a body file
		t.Errorf("walked %d entries; the spool layout was not created", seen)
	}
}
