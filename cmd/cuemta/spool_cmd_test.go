package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/queue"
)

func spoolOpts() queue.Options {
	return queue.Options{CompactInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// makeSpool writes a closed spool with ten messages msg00..msg09.
func makeSpool(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "spool")
	s, err := queue.Open(dir, spoolOpts())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		env := &queue.Envelope{
			ID:         fmt.Sprintf("msg%02d", i),
			From:       fmt.Sprintf("sender%d@example.org", i),
			Recipients: []queue.Recipient{{Addr: fmt.Sprintf("rcpt%d@example.com", i)}},
			Received:   time.Date(2026, 3, 14, 12, 0, i, 0, time.UTC),
		}
		if _, err := s.Enqueue(context.Background(), env, []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody of message %d\r\n", i, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// flipAfter flips a byte just after the first occurrence of marker in any
// file under dir/sub.
func flipAfter(t *testing.T, dir, sub, marker string) {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(dir, sub, "*"))
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(data, []byte(marker)); i >= 0 {
			data[i+len(marker)+2] ^= 0x20
			if err := os.WriteFile(p, data, 0o640); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%q not found under %s", marker, sub)
}

func spoolLen(t *testing.T, dir string) int {
	t.Helper()
	s, err := queue.Open(dir, spoolOpts())
	if err != nil {
		t.Fatalf("open the salvaged spool: %v", err)
	}
	defer s.Close()
	return s.Len()
}

func TestSpoolSalvage(t *testing.T) {
	for _, c := range []struct {
		name    string
		damage  func(t *testing.T, dir string)
		code    int
		says    []string
		fresh   int // messages in the fresh spool
		outFlag bool
	}{
		{"clean", func(*testing.T, string) {}, 0,
			[]string{"recovered: 10 messages (10 log entries read)", "unreadable log ranges: 0", "lost messages: 0", "result: everything was recovered"}, 10, false},
		{"damaged body", func(t *testing.T, dir string) { flipAfter(t, dir, "body", "msg03") }, 1,
			[]string{"recovered: 9 messages", "lost messages: 1", "  msg03  spool: body of msg03 in ", "frame check failed", "result: something was lost"}, 9, false},
		{"damaged log record", func(t *testing.T, dir string) { flipAfter(t, dir, "wal", "sender5@") }, 1,
			[]string{"recovered: 9 messages (9 log entries read)", "unreadable log ranges: 1", "  wal/00000000000000000001  bytes ", "record checksum mismatch",
				"lost without its ID", "result: something was lost"}, 9, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := makeSpool(t)
			c.damage(t, dir)
			args := []string{"salvage", dir}
			fresh := dir + ".salvaged"
			if c.outFlag {
				fresh = filepath.Join(t.TempDir(), "out")
				args = append(args, "-o", fresh) // flags after the argument
			}
			code, out, stderr := run(runSpool, args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, c.code, out, stderr)
			}
			for _, s := range append(c.says, "salvaged "+dir+" into "+fresh+"\n") {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if stderr != "" {
				t.Errorf("stderr: %s", stderr)
			}
			if n := spoolLen(t, fresh); n != c.fresh {
				t.Errorf("fresh spool holds %d messages, want %d", n, c.fresh)
			}
		})
	}
}

func TestSpoolSalvageErrors(t *testing.T) {
	dir := makeSpool(t)
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o640)
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{nil, 2, "usage: cuemta spool"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"salvage"}, 2, "want the spool directory, got 0 arguments"},
		{[]string{"salvage", dir, "other"}, 2, "got 2 arguments"},
		{[]string{"salvage", "-o", full, dir}, 2, "exists and is not empty"},
		{[]string{"salvage", "--bogus", dir}, 2, "flag provided but not defined"},
		{[]string{"salvage", t.TempDir()}, 2, "not a spool"},
	} {
		code, _, stderr := run(runSpool, c.args...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, stderr, c.code, c.says)
		}
	}
	if code, _, _ := run(runSpool, "help"); code != 0 {
		t.Errorf("help: exit %d", code)
	}
}
