// Command smtpload is an SMTP load driver for benchmarks. It opens -c
// concurrent sessions to one loopback address and sends messages of -size
// bytes over each, reusing the session (the next MAIL follows the 250 of
// the previous DATA, no RSET), optionally pipelining MAIL, RCPT and DATA.
//
// It stops by itself after -duration or once -count messages have been
// accepted, whichever comes first; sessions then finish the message in
// flight and QUIT. Every network operation has a deadline, so a silent
// server cannot hold it past -duration plus -timeout.
//
// For each accepted message it records the reply latency after the end of
// data (the final dot written to the socket, until the 250 is read). It
// prints accepted msgs/s, p50/p90/p99/max of that latency and the errors by
// reply code ("io" for broken connections), as text or, with -json, as one
// line of JSON. Every message carries an X-Load-Sent header with the Unix
// time in nanoseconds at which its transaction started, for smtpsink to
// measure time in queue.
//
// Only loopback targets are accepted: this tool must never load a host
// other than the one it runs on.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	addr       string
	sessions   int
	size       int
	duration   time.Duration
	count      int64
	pipelining bool
	perConn    int
	from, to   string
	timeout    time.Duration
	rate       float64
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:2525", "target `host:port` (loopback only)")
	flag.IntVar(&o.sessions, "c", 50, "concurrent SMTP sessions")
	flag.IntVar(&o.size, "size", 2048, "message size in `bytes`, headers included")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "stop starting messages after this long (at most 10m)")
	flag.Int64Var(&o.count, "count", 0, "stop after this many accepted messages (0: no limit but -duration)")
	flag.BoolVar(&o.pipelining, "pipelining", false, "send MAIL, RCPT and DATA in one write (RFC 2920) when the server offers PIPELINING")
	flag.IntVar(&o.perConn, "per-conn", 0, "messages per session before QUIT and reconnect (0: unlimited)")
	flag.StringVar(&o.from, "from", "bench@example.com", "envelope sender and From")
	flag.StringVar(&o.to, "to", "rcpt@example.net", "envelope recipient and To")
	flag.DurationVar(&o.timeout, "timeout", 30*time.Second, "deadline of each network operation")
	flag.Float64Var(&o.rate, "rate", 0, "offered load: start at most this many messages per second in all (0: as fast as the server accepts)")
	jsonOut := flag.Bool("json", false, "print the summary as one line of JSON")
	flag.Parse()

	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "smtpload:", err)
		os.Exit(2)
	}
	res := run(o)
	if *jsonOut {
		b, _ := json.Marshal(res)
		fmt.Println(string(b))
	} else {
		res.print(os.Stdout)
	}
	if res.Accepted == 0 {
		os.Exit(1)
	}
}

func (o *options) check() error {
	host, port, err := net.SplitHostPort(o.addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		o.addr = net.JoinHostPort("127.0.0.1", port)
	} else if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing target %q: loopback addresses only (127.0.0.0/8, ::1, localhost)", o.addr)
	}
	switch {
	case o.sessions < 1 || o.sessions > 10000:
		return errors.New("-c must be in 1..10000")
	case o.size < 256 || o.size > 64<<20:
		return errors.New("-size must be in 256..64MiB")
	case o.duration <= 0 || o.duration > 10*time.Minute:
		return errors.New("-duration must be in (0, 10m]")
	case o.count < 0:
		return errors.New("-count must be >= 0")
	case o.timeout <= 0:
		return errors.New("-timeout must be > 0")
	case o.rate < 0:
		return errors.New("-rate must be >= 0")
	}
	return nil
}

// Result is the summary of a run. Latencies are milliseconds.
type Result struct {
	Target     string         `json:"target"`
	Sessions   int            `json:"sessions"`
	Size       int            `json:"size"`
	Pipelining bool           `json:"pipelining"`
	Offered    float64        `json:"offered_rate"` // -rate, 0 for unlimited
	Accepted   int64          `json:"accepted"`
	Failed     int64          `json:"failed"`
	Conns      int64          `json:"conns"`
	ElapsedS   float64        `json:"elapsed_s"`
	Rate       float64        `json:"rate"` // accepted msgs/s
	MBps       float64        `json:"mb_per_s"`
	P50        float64        `json:"p50_ms"`
	P90        float64        `json:"p90_ms"`
	P99        float64        `json:"p99_ms"`
	Max        float64        `json:"max_ms"`
	Errors     map[string]int `json:"errors"`
}

func (r *Result) print(w io.Writer) {
	offered := "unlimited"
	if r.Offered > 0 {
		offered = fmt.Sprintf("%g msgs/s", r.Offered)
	}
	fmt.Fprintf(w, "smtpload: %s, %d sessions, %d-byte messages, pipelining=%v, offered load %s\n",
		r.Target, r.Sessions, r.Size, r.Pipelining, offered)
	fmt.Fprintf(w, "accepted %d msgs in %.2fs = %.1f msgs/s (%.1f MB/s) over %d connections\n",
		r.Accepted, r.ElapsedS, r.Rate, r.MBps, r.Conns)
	fmt.Fprintf(w, "reply latency after DATA dot: p50=%.3fms p90=%.3fms p99=%.3fms max=%.3fms\n", r.P50, r.P90, r.P99, r.Max)
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors: none")
		return
	}
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, r.Errors[k])
	}
	fmt.Fprintf(w, "errors: %d failed messages: %s\n", r.Failed, strings.Join(parts, " "))
}

// shared is the state all sessions update.
type shared struct {
	o        options
	start    time.Time
	deadline time.Time
	claimed  atomic.Int64 // messages started (bounded by -count)
	paced    atomic.Int64 // messages started (for -rate)
	accepted atomic.Int64
	conns    atomic.Int64
	body     []byte // filler body, CRLF lines, no leading dots

	mu     sync.Mutex
	lat    []time.Duration
	errors map[string]int
	failed int64
	last   time.Time // when the last message was accepted
}

func run(o options) *Result {
	sh := &shared{o: o, errors: map[string]int{}}
	sh.body = filler(o.size - len(sh.header(0, 0, time.Now())))
	start := time.Now()
	sh.start, sh.deadline = start, start.Add(o.duration)
	var wg sync.WaitGroup
	for i := range o.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sh.worker(i)
		}()
	}
	wg.Wait()

	res := &Result{Target: o.addr, Sessions: o.sessions, Size: o.size, Pipelining: o.pipelining, Offered: o.rate,
		Accepted: sh.accepted.Load(), Failed: sh.failed, Conns: sh.conns.Load(), Errors: sh.errors}
	end := sh.last
	if end.IsZero() {
		end = time.Now()
	}
	res.ElapsedS = end.Sub(start).Seconds()
	if res.ElapsedS > 0 {
		res.Rate = float64(res.Accepted) / res.ElapsedS
		res.MBps = res.Rate * float64(o.size) / 1e6
	}
	if n := len(sh.lat); n > 0 {
		l := sh.lat
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		pct := func(p float64) float64 { // nearest rank
			i := max(0, min(int(p*float64(n)+0.5)-1, n-1))
			return float64(l[i]) / 1e6
		}
		res.P50, res.P90, res.P99, res.Max = pct(0.50), pct(0.90), pct(0.99), float64(l[n-1])/1e6
	}
	return res
}

// more claims the next message, or reports that the run is over. With
// -rate, message n may not start before start + n/rate.
func (sh *shared) more() bool {
	if sh.o.rate > 0 {
		n := sh.paced.Add(1) - 1
		at := sh.start.Add(time.Duration(float64(n) / sh.o.rate * float64(time.Second)))
		if at.After(sh.deadline) {
			return false
		}
		time.Sleep(time.Until(at))
	}
	if time.Now().After(sh.deadline) {
		return false
	}
	if sh.o.count > 0 && sh.claimed.Add(1) > sh.o.count {
		return false
	}
	return true
}

// unclaim gives back a claimed message that was not sent, so that -count
// is reached even when some attempts fail.
func (sh *shared) unclaim() {
	if sh.o.count > 0 {
		sh.claimed.Add(-1)
	}
}

// worker runs one session after another until the run is over.
func (sh *shared) worker(id int) {
	var lat []time.Duration
	errs := map[string]int{}
	var failed int64
	var last time.Time
	defer func() {
		sh.mu.Lock()
		sh.lat = append(sh.lat, lat...)
		for k, v := range errs {
			sh.errors[k] += v
		}
		sh.failed += failed
		if last.After(sh.last) {
			sh.last = last
		}
		sh.mu.Unlock()
	}()
	fail := func(code string) {
		errs[code]++
		failed++
	}
	seq := 0
	for time.Now().Before(sh.deadline) {
		c, err := sh.dial()
		if err != nil {
			fail("connect")
			time.Sleep(50 * time.Millisecond)
			continue
		}
		sent, broken := 0, false
		for !broken && (sh.o.perConn == 0 || sent < sh.o.perConn) {
			if !sh.more() {
				c.quit()
				return
			}
			seq++
			d, code, err := c.send(sh, id, seq)
			sent++
			if err != nil {
				sh.unclaim()
				fail(code)
				broken = true // a broken or closing session: reconnect
				continue
			}
			if code != "" {
				sh.unclaim()
				fail(code)
				continue
			}
			lat = append(lat, d)
			last = time.Now()
			if n := sh.accepted.Add(1); sh.o.count > 0 && n >= sh.o.count {
				c.quit()
				return
			}
		}
		if broken {
			c.close()
		} else {
			c.quit()
		}
	}
}

// conn is one SMTP session.
type conn struct {
	nc         net.Conn
	r          *bufio.Reader
	w          *bufio.Writer
	timeout    time.Duration
	pipelining bool
}

func (sh *shared) dial() (*conn, error) {
	nc, err := net.DialTimeout("tcp", sh.o.addr, sh.o.timeout)
	if err != nil {
		return nil, err
	}
	sh.conns.Add(1)
	c := &conn{nc: nc, r: bufio.NewReaderSize(nc, 16<<10), w: bufio.NewWriterSize(nc, 64<<10), timeout: sh.o.timeout}
	if code, _, err := c.reply(); err != nil || code != 220 {
		nc.Close()
		return nil, fmt.Errorf("greeting %d: %v", code, err)
	}
	c.w.WriteString("EHLO smtpload.test\r\n")
	if err := c.flush(); err != nil {
		nc.Close()
		return nil, err
	}
	code, text, err := c.reply()
	if err != nil || code != 250 {
		nc.Close()
		return nil, fmt.Errorf("EHLO %d: %v", code, err)
	}
	c.pipelining = sh.o.pipelining && strings.Contains(strings.ToUpper(text), "\nPIPELINING")
	return c, nil
}

func (c *conn) flush() error {
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	return c.w.Flush()
}

// reply reads one (possibly multi-line) reply; text holds every line's
// text, each after a newline.
func (c *conn) reply() (int, string, error) {
	c.nc.SetDeadline(time.Now().Add(c.timeout))
	var text strings.Builder
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, "", err
		}
		if len(line) < 5 {
			return 0, "", fmt.Errorf("short reply %q", line)
		}
		code, err := strconv.Atoi(string(line[:3]))
		if err != nil {
			return 0, "", fmt.Errorf("bad reply %q", line)
		}
		text.WriteByte('\n')
		text.Write(line[4 : len(line)-2])
		if line[3] != '-' {
			return code, text.String(), nil
		}
	}
}

// send runs one transaction. It returns the latency after the final dot
// on success; a reply code when the server refused the message; an error
// (and "io", or the reply code for 421) when the session is unusable.
func (c *conn) send(sh *shared, worker, seq int) (time.Duration, string, error) {
	now := time.Now()
	cmds := [3]string{"MAIL FROM:<" + sh.o.from + ">\r\n", "RCPT TO:<" + sh.o.to + ">\r\n", "DATA\r\n"}
	want := [3]int{250, 250, 354}
	first := "" // the first refusal
	if c.pipelining {
		for _, s := range cmds {
			c.w.WriteString(s)
		}
		if err := c.flush(); err != nil {
			return 0, "io", err
		}
	}
	for i, s := range cmds {
		if !c.pipelining {
			c.w.WriteString(s)
			if err := c.flush(); err != nil {
				return 0, "io", err
			}
		}
		code, _, err := c.reply()
		if err != nil {
			return 0, "io", err
		}
		if code == 421 {
			return 0, "421", errors.New("421")
		}
		if code != want[i] && first == "" {
			first = strconv.Itoa(code)
		}
		if code != want[i] && !c.pipelining {
			return 0, first, c.rset()
		}
		if i == 2 && code != 354 {
			return 0, first, c.rset()
		}
	}
	c.w.Write(sh.header(worker, seq, now))
	c.w.Write(sh.body)
	c.w.WriteString(".\r\n")
	if err := c.flush(); err != nil {
		return 0, "io", err
	}
	t0 := time.Now()
	code, _, err := c.reply()
	d := time.Since(t0)
	if err != nil {
		return 0, "io", err
	}
	if code == 421 {
		return 0, "421", errors.New("421")
	}
	if first != "" {
		return 0, first, nil
	}
	if code != 250 {
		return 0, strconv.Itoa(code), nil
	}
	return d, "", nil
}

func (c *conn) rset() error {
	c.w.WriteString("RSET\r\n")
	if err := c.flush(); err != nil {
		return err
	}
	_, _, err := c.reply()
	return err
}

func (c *conn) quit() {
	c.w.WriteString("QUIT\r\n")
	if c.flush() == nil {
		c.reply()
	}
	c.close()
}

func (c *conn) close() { c.nc.Close() }

// header returns the message header; its length does not depend on the
// arguments' values beyond their digits, which filler's size accounts for
// closely enough.
func (sh *shared) header(worker, seq int, now time.Time) []byte {
	return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: smtpload %d.%d\r\nDate: %s\r\n"+
		"Message-ID: <%d.%d.%d@smtpload.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"+
		"X-Load-Sent: %d\r\n\r\n",
		sh.o.from, sh.o.to, worker, seq, now.Format(time.RFC1123Z), now.UnixNano(), worker, seq, now.UnixNano())
}

// filler returns a body of n bytes (at least one line) of 78-character
// CRLF lines that never start with a dot.
func filler(n int) []byte {
	const line = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 the quick brown\r\n"
	n = max(n, len(line))
	b := make([]byte, 0, n+len(line))
	for len(b)+len(line) <= n {
		b = append(b, line...)
	}
	if rest := n - len(b); rest > 0 {
		b = append(b, strings.Repeat("x", max(rest-2, 0))...)
		b = append(b, "\r\n"...)
	}
	return b
}
