package reception

import (
	"strings"
	"testing"
	"time"

	"github.com/cuemta/cuemta/config"
)

// TestDataRateAndTimeLimits: a client that trickles its message (a byte
// every 50 ms, far below minDataRate) is cut off with 421 4.4.2 once the
// grace of one dataTimeout has passed, though every read arrives well
// within dataTimeout; so is one that keeps a fair rate past maxDataTime.
// DATA and BDAT alike (within a chunk and between chunks), in clear and
// under TLS. A client at a normal rate is not cut, though its upload
// outlasts dataTimeout.
func TestDataRateAndTimeLimits(t *testing.T) {
	const (
		grace = 300 * time.Millisecond // dataTimeout
		tick  = 50 * time.Millisecond
	)
	// dataPiece is n bytes (n >= 2, n%64 != 1) of message: lines of at most 64
	// octets, the last one shorter.
	dataPiece := func(n int) func(i int) string {
		var b strings.Builder
		for b.Len() < n {
			k := min(64, n-b.Len())
			b.WriteString(strings.Repeat("z", k-2) + "\r\n")
		}
		p := b.String()
		return func(int) string { return p }
	}
	tests := []struct {
		name    string
		tls     bool
		bdat    string // "": DATA; "chunk": one BDAT chunk the pieces fill; "chunks": a BDAT per piece
		minRate int64
		maxTime time.Duration
		piece   func(i int) string // what is sent at tick i
		ticks   int
		want    string        // the reply that ends it
		cutAt   time.Duration // the cut is due then (0: not cut)
	}{
		{name: "DATA trickle", minRate: 1024, maxTime: 10 * time.Second, piece: dataPiece(2), ticks: 60,
			want: "421 4.4.2 Message data too slow, closing channel", cutAt: grace},
		{name: "DATA trickle under TLS", tls: true, minRate: 1024, maxTime: 10 * time.Second, piece: dataPiece(2), ticks: 60,
			want: "421 4.4.2 Message data too slow, closing channel", cutAt: grace},
		{name: "BDAT trickle within a chunk", bdat: "chunk", minRate: 1024, maxTime: 10 * time.Second, piece: dataPiece(2), ticks: 60,
			want: "421 4.4.2 Message data too slow, closing channel", cutAt: grace},
		{name: "BDAT trickle of chunks", bdat: "chunks", minRate: 1024, maxTime: 10 * time.Second, piece: dataPiece(2), ticks: 60,
			want: "421 4.4.2 Message data too slow, closing channel", cutAt: grace},
		{name: "DATA past maxDataTime", minRate: 1, maxTime: 600 * time.Millisecond, piece: dataPiece(100), ticks: 60,
			want: "421 4.4.2 Message data took too long, closing channel", cutAt: 600 * time.Millisecond},
		// 4 KB a tick is 80 KB/s, for 1 s: more than three dataTimeouts.
		{name: "DATA normal rate", minRate: 1024, maxTime: 10 * time.Second, piece: dataPiece(4096), ticks: 20,
			want: "250 2.0.0 Ok: queued as Q1"},
		{name: "DATA normal rate under TLS", tls: true, minRate: 1024, maxTime: 10 * time.Second, piece: dataPiece(4096), ticks: 20,
			want: "250 2.0.0 Ok: queued as Q1"},
		{name: "BDAT normal rate", bdat: "chunks", minRate: 1024, maxTime: 10 * time.Second, piece: dataPiece(4096), ticks: 20,
			want: "250 2.0.0 Ok: queued as Q1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.tls {
				e.withTLS()
			}
			e.l.Limits.MaxMessageSize = 1 << 20
			e.l.Limits.DataTimeout = config.Duration(grace)
			e.l.Limits.MinDataRate = tt.minRate
			e.l.Limits.MaxDataTime = config.Duration(tt.maxTime)
			b := NewBudget(4 << 20)
			e.p.Budget = b
			e.start()
			c := e.ehlo()
			if tt.tls {
				c.startTLS()
				c.expect("EHLO client.test", "250")
			}
			c.expect("MAIL FROM:<a@client.test>", "250")
			c.expect("RCPT TO:<b@example.com>", "250")
			var pieces []string
			for i := range tt.ticks {
				pieces = append(pieces, tt.piece(i))
			}
			chunkLen := len(strings.Join(pieces, ""))
			switch tt.bdat {
			case "":
				c.expect("DATA", "354")
			case "chunk":
				c.send("BDAT " + itoa(chunkLen) + " LAST\r\n")
			}

			// Replies are read as they come, so the writer stops at the
			// first that is not a BDAT "Continue".
			replies := make(chan string, 1)
			go func() {
				for {
					c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					code, msg, err := c.r.ReadResponse(0)
					if err != nil {
						replies <- "read: " + err.Error()
						return
					}
					if r := itoa(code) + " " + msg; r != "250 2.0.0 Continue" {
						replies <- r
						return
					}
				}
			}()
			start := time.Now()
			ticker := time.NewTicker(tick)
			defer ticker.Stop()
			var got string
		send:
			for i, p := range pieces {
				if tt.bdat == "chunks" {
					p = "BDAT " + itoa(len(p)) + "\r\n" + p
				}
				c.conn.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.conn.Write([]byte(p)); err != nil {
					break // closed by the server: its reply is read below
				}
				if i == len(pieces)-1 {
					break
				}
				select {
				case got = <-replies:
					break send
				case <-ticker.C:
				}
			}
			if got == "" && tt.cutAt == 0 {
				switch tt.bdat {
				case "":
					c.send(".\r\n")
				case "chunks":
					c.send("BDAT 0 LAST\r\n")
				}
			}
			if got == "" {
				got = <-replies
			}
			elapsed := time.Since(start)
			if got != tt.want {
				t.Fatalf("after %v: %q, want %q", elapsed, got, tt.want)
			}
			if tt.cutAt > 0 {
				slack := time.Second
				if raceEnabled {
					slack = 3 * time.Second
				}
				if elapsed < tt.cutAt-tick || elapsed > tt.cutAt+slack {
					t.Errorf("cut off after %v, want about %v", elapsed, tt.cutAt)
				}
				c.expectClosed()
				if n := len(e.sink.got()); n != 0 {
					t.Errorf("sink got %d messages", n)
				}
			} else if elapsed < 3*grace {
				t.Errorf("the upload took %v, not longer than dataTimeout: the case shows nothing", elapsed)
			}
			waitFor(t, "the budget to be released", func() bool { return b.InFlight() == 0 })
		})
	}
}
