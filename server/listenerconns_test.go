package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestStatusCountsListenerConnections: the status (and the console built
// on it) shows each listener's open connections, and the count falls back
// when they close.
func TestStatusCountsListenerConnections(t *testing.T) {
	dir := t.TempDir()
	src := fmt.Sprintf(`
hostname: "mta.test"
listeners: mx: addr: "127.0.0.1:0"
spool: dir: %q
dns: servers: ["127.0.0.1:1"]
`, filepath.Join(dir, "spool"))
	if err := os.WriteFile(filepath.Join(dir, "cuemta.cue"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, _, _ := runServer(t, dir)
	listenerConns := func() int {
		st, err := backend{srv}.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range st.Listeners {
			if l.Name == "mx" {
				return l.Connections
			}
		}
		t.Fatal("no listener mx in the status")
		return 0
	}
	waitConns := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for listenerConns() != want {
			if time.Now().After(deadline) {
				t.Fatalf("listener connections = %d, want %d", listenerConns(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var conns []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", srv.ListenerAddr("mx"))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	waitConns(2)
	for _, c := range conns {
		c.Close()
	}
	waitConns(0)
}
