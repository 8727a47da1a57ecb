package reception

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

// discardSink accepts every message and keeps nothing.
type discardSink struct{}

func (discardSink) Accept(context.Context, *Submission) (string, error) { return "Q", nil }

// BenchmarkReceive sends one message per iteration through a real server
// over loopback. B/op is what reception allocates per message (client
// included, a few KiB): with the body buffered in pooled chunks and copied
// once into the stored message, it is about one message size; it was about
// four when the body grew in a bytes.Buffer and was copied again to add the
// Received header.
func BenchmarkReceive(b *testing.B) {
	for _, size := range []int{100 << 10, 10 << 20} {
		b.Run(itoa(size>>10)+"KiB", func(b *testing.B) {
			l := &config.Listener{Name: "bench", Addr: "127.0.0.1:0", Mode: "mx",
				Limits: config.ListenerLimits{MaxMessageSize: 64 << 20}}
			p := Policy{Hostname: "mx.test", Relay: RelayPolicy{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
			srv, err := New(l, p, discardSink{}, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Shutdown(context.Background())
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			r := textproto.NewReader(bufio.NewReader(conn))
			w := bufio.NewWriterSize(conn, 64<<10)
			cmd := func(line string, want int) {
				if line != "" {
					io.WriteString(w, line+"\r\n")
					w.Flush()
				}
				if _, _, err := r.ReadResponse(want); err != nil {
					b.Fatalf("%s: %v", line, err)
				}
			}
			conn.SetDeadline(time.Now().Add(time.Hour))
			cmd("", 220)
			cmd("EHLO client.test", 250)
			line := strings.Repeat("x", 76) + "\r\n"
			body := "Subject: bench\r\n\r\n" + strings.Repeat(line, size/len(line))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				cmd("MAIL FROM:<a@client.test>", 250)
				cmd("RCPT TO:<b@example.com>", 250)
				cmd("DATA", 354)
				io.WriteString(w, body)
				cmd(".", 250)
			}
		})
	}
}
