package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/cuemta/cuemta/internal/golden"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readyz returns the status and body of GET /readyz.
func readyz(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// mailFrom opens an SMTP session and returns the reply to MAIL FROM.
func mailFrom(t *testing.T, addr string) string {
	t.Helper()
	c, err := textproto.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := c.ReadResponse(220); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Cmd("EHLO client.test"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadResponse(250); err != nil {
		t.Fatal(err)
	}
	c.Cmd("MAIL FROM:<a@client.test>")
	code, msg, _ := c.ReadResponse(0)
	return fmt.Sprintf("%d %s", code, msg)
}

// TestReadyzFollowsSpoolSpace: a server whose spool is below its reserve
// (here a reserve larger than any disk) answers /readyz 503 saying so and
// MAIL FROM 452 4.3.1; a reload to a reserve that fits makes it ready and
// accepting again within a space check, without a restart.
func TestReadyzFollowsSpoolSpace(t *testing.T) {
	dir := t.TempDir()
	admin := freeAddr(t)
	conf := func(reserve int64) {
		src := fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
admin: addr: %q
spool: {dir: %q, reserve: %d}
dns: servers: ["127.0.0.1:1"]
`, admin, filepath.Join(dir, "spool"), reserve)
		if err := os.WriteFile(filepath.Join(dir, "cuemta.cue"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf(1 << 50)
	srv, ctx, logs := runServer(t, dir)

	code, body := readyz(t, admin)
	var reply struct{ Error, Detail string }
	json.Unmarshal([]byte(body), &reply)
	if code != http.StatusServiceUnavailable || reply.Error != "not ready: the spool is low on disk space" ||
		!strings.Contains(reply.Detail, "452 4.3.1") {
		t.Fatalf("readyz below the reserve: %d %s", code, body)
	}
	if got := mailFrom(t, srv.ListenerAddr("mx")); !strings.HasPrefix(got, "452 4.3.1") {
		t.Fatalf("MAIL FROM below the reserve: %q", got)
	}

	conf(0) // the default reserve: 1.5 × 50 MB fits this disk
	start := time.Now()
	if r := srv.Reload(ctx, "test"); !r.OK {
		t.Fatalf("reload: %v", r.Errors)
	}
	for {
		if code, _ := readyz(t, admin); code == http.StatusOK {
			break
		}
		if time.Since(start) > 5*time.Second {
			code, body := readyz(t, admin)
			t.Fatalf("readyz 5s after the reserve fits: %d %s\n%s", code, body, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ready %v after the reload", time.Since(start).Round(time.Millisecond))
	if got := mailFrom(t, srv.ListenerAddr("mx")); !strings.HasPrefix(got, "250") {
		t.Fatalf("MAIL FROM after the reserve fits: %q", got)
	}
}

// runServer loads the config in dir and runs a Server on it until the
// test ends, returning once it is ready; logs collects its process log.
func runServer(t *testing.T, dir string) (*Server, context.Context, *lockedWriter) {
	t.Helper()
	snap, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedWriter{}
	srv, err := New(dir, snap, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server not up")
	}
	return srv, ctx, logs
}

// lockedWriter is a log sink safe for the server's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
