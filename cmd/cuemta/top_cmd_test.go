package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// TestTopInTerminal runs `cuemta top` with a pseudo-terminal as its
// output, as an operator's shell would: each frame clears the screen and
// is cut to the terminal's size, and the numbers are the console's.
func TestTopInTerminal(t *testing.T) {
	_, args := startAdmin(t, "")
	ptm, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptm.Close()
	// 24 rows leave room for the whole frame; 72 columns cut the longest lines.
	if err := pty.Setsize(ptm, &pty.Winsize{Rows: 24, Cols: 72}); err != nil {
		t.Fatal(err)
	}
	out := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(ptm) // ends with EIO once the tty is closed
		out <- b
	}()
	var stderr bytes.Buffer
	code := runTop(append([]string{"--interval", "100ms", "--frames", "2"}, args...), tty, &stderr)
	tty.Close()
	var got []byte
	select {
	case got = <-out:
	case <-time.After(10 * time.Second):
		t.Fatal("no output from the terminal")
	}
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	screen := string(got)
	frames := strings.Split(screen, "\x1b[H\x1b[2J")
	if len(frames) != 3 { // before the first clear: the cursor hiding
		t.Fatalf("want 2 frames, got %d:\n%q", len(frames)-1, screen)
	}
	if !strings.HasPrefix(frames[0], "\x1b[?25l") || !strings.HasSuffix(screen, "\x1b[?25h") {
		t.Errorf("the cursor is not hidden and shown again: %q", screen)
	}
	// The terminal's output processing turns each \n into \r\n; the
	// frame ends its lines with \r\n already, for a terminal without it.
	frame := strings.ReplaceAll(frames[2], "\r", "")
	lines := strings.Split(strings.TrimSuffix(frame, "\n"), "\n")
	if len(lines) > 23 {
		t.Errorf("frame of %d lines on a 24-row terminal", len(lines))
	}
	for _, l := range lines {
		if n := len([]rune(l)); n > 72 {
			t.Errorf("line of %d columns on a 72-column terminal: %q", n, l)
		}
	}
	for _, want := range []string{
		"cuemta  2026-03-14T15:00:00Z  generation 4  queue 129  connections 6",
		"per second (last minute): received 2.00  delivered 1.50  deferred 0.25",
		"google    2      1.25     0.25     0.00      120     26h30m  5      100",
		"gmail               google    1.00     0.25     0.00      100     26h30",
		"suspended  site      outlook     45m   ms-block             S3150 block",
		"throttled  provider  google/ip1  30m   google-unusual-rate  10/1m0s",
	} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q:\n%s", want, frame)
		}
	}
}

func TestTopRefused(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"--interval", "1ms"}, {"--frames", "-1"}} {
		code, _, stderr := run(runTop, args...)
		if code != 2 || !strings.Contains(stderr, "usage: cuemta top") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
