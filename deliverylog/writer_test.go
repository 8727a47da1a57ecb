package deliverylog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/internal/golden"
)

var fixedTime = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.FixedZone("CET", 3600))

// fullEvent sets every field, so the golden line shows the whole encoding.
func fullEvent() Event {
	return Event{
		Time: fixedTime, Type: TypeDelivery, MessageID: "01HZX3Q5R8", From: "news@example.com",
		Rcpt: "bob@example.net", Rcpts: []string{"bob@example.net", "eve@example.org"},
		Site: "gmail-smtp-in.l.google.com", MX: "gmail-smtp-in.l.google.com",
		Source: "ip1", Pool: "bulk", Tenant: "acme", Campaign: "spring-sale",
		Reply: `250 2.0.0 OK <id@x> "quoted"`, Class: "ok", Rule: "gmail-ok", Attempt: 2,
		DurationMS: 1234, QueueMS: 56789, Size: 4096, Listener: "mx", ClientIP: "192.0.2.7",
		Generation: 3, Action: "retry", Actor: "cli:root", Reason: "operator asked",
		TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", TLSVerified: "none",
		DKIM: []DKIMSignature{
			{Key: "acme-rsa", Domain: "acme.example", Selector: "s2026", Algorithm: "rsa-sha256", Aligned: "strict"},
			{Key: "esp", Domain: "esp.example", Selector: "esp1", Algorithm: "ed25519-sha256", Aligned: "none"},
		},
	}
}

func TestEncodeGolden(t *testing.T) {
	var buf bytes.Buffer
	ev := fullEvent()
	if err := encode(&buf, &ev); err != nil {
		t.Fatal(err)
	}
	ev2 := Event{Time: fixedTime, Type: TypeReception, MessageID: "m1", From: "<>", Rcpts: []string{"a@b.example"}}
	if err := encode(&buf, &ev2); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/events.golden", buf.Bytes())
}

func TestOmitEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := encode(&buf, &Event{Time: fixedTime, Type: TypeExpiry}); err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-03-14T14:09:26.535897932Z","type":"expiry"}` + "\n"
	if buf.String() != want {
		t.Errorf("got %s want %s", buf.String(), want)
	}
}

func TestMillis(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want int64
	}{{0, 0}, {-time.Second, 0}, {time.Microsecond, 1}, {time.Millisecond, 1}, {1500 * time.Microsecond, 2}, {2 * time.Second, 2000}} {
		if got := Millis(c.d); got != c.want {
			t.Errorf("Millis(%v) = %d, want %d", c.d, got, c.want)
		}
	}
}

func TestFileAndStdout(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "delivery.log")
	var out bytes.Buffer
	w, err := New(config.Log{File: path, Stdout: true, MaxSize: 1 << 20, Keep: 2},
		WithStdout(&out), WithFlushInterval(0), WithClock(func() time.Time { return fixedTime }))
	if err != nil {
		t.Fatal(err)
	}
	w.Log(Event{Type: TypeBounce, Rcpt: "x@y.example"})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Log(Event{Type: TypeBounce}) // after Close: dropped, no panic
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-03-14T14:09:26.535897932Z","type":"bounce","rcpt":"x@y.example"}` + "\n"
	if string(b) != want || out.String() != want {
		t.Errorf("file %q stdout %q, want %q in both", b, out.String(), want)
	}
	if err := w.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
}

func TestAppendsToExistingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.log")
	if err := os.WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := New(config.Log{File: path, MaxSize: 1 << 20}, WithFlushInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	w.Log(Event{Time: fixedTime, Type: TypeAdmin})
	w.Close()
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "old\n{") {
		t.Errorf("existing content not kept: %q", b)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.log")
	line := func(i int) Event {
		return Event{Time: fixedTime, Type: TypeDelivery, MessageID: fmt.Sprintf("m%03d", i)}
	}
	var one bytes.Buffer
	ev := line(0)
	encode(&one, &ev)
	n := int64(one.Len()) // every line has the same length
	// Three lines per file: the fourth rotates.
	w, err := New(config.Log{File: path, MaxSize: 3 * n, Keep: 2}, WithFlushInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // files of 3 lines: m000-002, m003-005, m006-008, m009
		w.Log(line(i))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"d.log":   {"m009"},
		"d.log.1": {"m006", "m007", "m008"},
		"d.log.2": {"m003", "m004", "m005"},
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("files %v, want only %d (keep 2 rotated)", entries, len(want))
	}
	for name, ids := range want {
		if got := messageIDs(t, filepath.Join(dir, name)); strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("%s holds %v, want %v", name, got, ids)
		}
		st, err := os.Stat(filepath.Join(dir, name))
		if err == nil && st.Size() > 3*n {
			t.Errorf("%s is %d bytes, over maxSize %d", name, st.Size(), 3*n)
		}
	}
}

func TestRotationKeepZero(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.log")
	w, err := New(config.Log{File: path, MaxSize: 100, Keep: 0}, WithFlushInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		w.Log(Event{Time: fixedTime, Type: TypeDelivery, MessageID: fmt.Sprintf("m%03d", i)})
	}
	w.Close()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("keep 0 left %v", entries)
	}
	if got := messageIDs(t, path); len(got) != 1 || got[0] != "m004" {
		t.Errorf("current file holds %v, want [m004]", got)
	}
}

func messageIDs(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: bad line %q: %v", path, sc.Text(), err)
		}
		ids = append(ids, ev.MessageID)
	}
	return ids
}

func TestConcurrentWritesAreWholeLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.log")
	w, err := New(config.Log{File: path, MaxSize: 4096, Keep: 50}, WithFlushInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				w.Log(Event{Type: TypeTransient, MessageID: fmt.Sprintf("g%d-%d", g, i), Reply: strings.Repeat("x", i%50)})
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	seen := 0
	for _, f := range files {
		seen += len(messageIDs(t, f)) // fails on any torn line
	}
	if seen != writers*each {
		t.Errorf("found %d lines in %d files, want %d", seen, len(files), writers*each)
	}
}

func TestDiscardAndNil(t *testing.T) {
	w, err := New(config.Log{})
	if err != nil {
		t.Fatal(err)
	}
	w.Log(Event{Type: TypeDelivery})
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var nilW *Writer
	nilW.Log(Event{Type: TypeDelivery})
	if nilW.Flush() != nil || nilW.Close() != nil || nilW.Err() != nil {
		t.Error("nil writer returned an error")
	}
}

func TestOpenErrorIsReported(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	_, err := New(config.Log{File: filepath.Join(blocker, "d.log")})
	if err == nil || !strings.Contains(err.Error(), "deliverylog") {
		t.Errorf("New under a regular file: err = %v, want a deliverylog error", err)
	}
}

func TestPeriodicFlush(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.log")
	w, err := New(config.Log{File: path, MaxSize: 1 << 20}, WithFlushInterval(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Log(Event{Type: TypeDelivery})
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Error("line not flushed by the periodic flush")
}
