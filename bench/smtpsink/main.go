// Command smtpsink is a minimal, fast SMTP server for benchmarks: it accepts
// every message, discards it and counts it. It is the next hop of the relay
// benchmarks and the "no MTA, no disk" baseline target of the injection
// benchmark.
//
// It speaks just enough SMTP for an MTA or a load driver (EHLO with
// PIPELINING, MAIL, RCPT, DATA, RSET, NOOP, QUIT), listens on loopback only,
// and measures what a relay benchmark needs to know:
//
//   - messages, bytes and connections, and the most connections open at once
//     (to check a per-site maxConnections limit);
//   - the delivery rate over the whole span and over a trimmed "steady"
//     window (the first and last -trim fraction of the span left out);
//   - time in queue: when a message carries an X-Load-Sent header holding
//     the sender's Unix time in nanoseconds (smtpload adds it), the sink
//     records now minus that at the end of DATA;
//   - DKIM: with -dkim-txt, one message in -dkim-every is verified with
//     go-msgauth against the given TXT records, never DNS.
//
// It stops and prints its summary (text, or JSON with -json) on SIGTERM or
// SIGINT, after -duration, or once no message has arrived for -idle-exit
// after the first one.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen `address` (loopback only; port 0 picks a free port)")
	addrFile := flag.String("addr-file", "", "write the bound address to this `file` once listening")
	duration := flag.Duration("duration", 0, "stop after this long (0: until SIGTERM, SIGINT or -idle-exit)")
	idleExit := flag.Duration("idle-exit", 0, "stop once no message has arrived for this long after the first one (0: never)")
	trim := flag.Float64("trim", 0.1, "fraction of the delivery span left out at each end of the steady window")
	jsonOut := flag.Bool("json", false, "print the summary as one line of JSON")
	dkimEvery := flag.Int("dkim-every", 10, "verify the DKIM signatures of one message in `N` (with -dkim-txt)")
	txt := map[string]string{}
	flag.Func("dkim-txt", "a TXT record for DKIM verification, as `name=value` (repeatable), e.g. s1._domainkey.example.com='v=DKIM1; k=rsa; p=...'", func(s string) error {
		name, value, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return errors.New("want name=value")
		}
		txt[strings.ToLower(strings.TrimSuffix(name, "."))] = value
		return nil
	})
	flag.Parse()

	if err := checkLoopback(*addr); err != nil {
		fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fatal(err)
	}
	s := &sink{start: time.Now(), dkimEvery: *dkimEvery, txt: txt}
	fmt.Fprintf(os.Stderr, "smtpsink listening addr=%s\n", ln.Addr())
	if *addrFile != "" {
		tmp := *addrFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			fatal(err)
		}
		if err := os.Rename(tmp, *addrFile); err != nil {
			fatal(err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	go s.serve(ln)
	if *idleExit > 0 {
		go s.watchIdle(*idleExit, stop)
	}
	<-ctx.Done()
	ln.Close()
	s.dkimWG.Wait()
	sum := s.summary(*trim)
	if *jsonOut {
		b, _ := json.Marshal(sum)
		fmt.Println(string(b))
	} else {
		sum.print(os.Stdout)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "smtpsink:", err)
	os.Exit(2)
}

// checkLoopback refuses to listen anywhere but on a loopback address.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to listen on %q: loopback addresses only", addr)
	}
	return nil
}

// sink is the shared state of all sessions.
type sink struct {
	start     time.Time
	dkimEvery int
	txt       map[string]string

	seq, msgs, bytes, rcpts, conns atomic.Int64
	open, maxOpen                  atomic.Int64
	lastMsg                        atomic.Int64 // unix nanos of the last message

	mu       sync.Mutex
	arrivals []int64 // nanoseconds since start, one per message
	queueLat []int64 // nanoseconds, one per message with X-Load-Sent

	dkimWG                                 sync.WaitGroup
	dkimPass, dkimFail, dkimNone, dkimTemp atomic.Int64
	dkimSigs                               atomic.Int64 // signatures in the messages checked
	dkimErr                                atomic.Value // string: the first failure
}

func (s *sink) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

func (s *sink) watchIdle(idle time.Duration, stop func()) {
	for range time.Tick(idle / 10) {
		last := s.lastMsg.Load()
		if last != 0 && time.Since(time.Unix(0, last)) >= idle {
			stop()
			return
		}
	}
}

// session runs one SMTP connection. Replies are buffered and flushed only
// when the client has nothing more pipelined, so a pipelined group costs
// one write.
func (s *sink) session(c net.Conn) {
	defer c.Close()
	s.conns.Add(1)
	n := s.open.Add(1)
	defer s.open.Add(-1)
	for {
		m := s.maxOpen.Load()
		if n <= m || s.maxOpen.CompareAndSwap(m, n) {
			break
		}
	}
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 4<<10)
	reply := func(line string) bool {
		w.WriteString(line)
		w.WriteString("\r\n")
		if r.Buffered() == 0 {
			return w.Flush() == nil
		}
		return true
	}
	if !reply("220 smtpsink ESMTP") {
		return
	}
	var body bytes.Buffer
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(string(bytes.TrimRight(line, "\r\n")))
		verb, _, _ := strings.Cut(cmd, " ")
		ok := true
		switch verb {
		case "EHLO":
			ok = reply("250-smtpsink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 1073741824\r\n250 ENHANCEDSTATUSCODES")
		case "HELO":
			ok = reply("250 smtpsink")
		case "MAIL", "RSET", "NOOP":
			ok = reply("250 2.0.0 Ok")
		case "RCPT":
			s.rcpts.Add(1)
			ok = reply("250 2.1.5 Ok")
		case "DATA":
			if !reply("354 End data with <CR><LF>.<CR><LF>") {
				return
			}
			w.Flush()
			id, err := s.data(r, &body)
			if err != nil {
				return
			}
			ok = reply("250 2.0.0 Ok: queued as " + strconv.FormatInt(id, 10))
		case "QUIT":
			reply("221 2.0.0 Bye")
			w.Flush()
			return
		default:
			ok = reply("502 5.5.2 Command not recognized")
		}
		if !ok {
			return
		}
	}
}

// data reads one message up to the final dot and accounts for it.
func (s *sink) data(r *bufio.Reader, body *bytes.Buffer) (int64, error) {
	seq := s.seq.Add(1)
	keep := len(s.txt) > 0 && s.dkimEvery > 0 && seq%int64(s.dkimEvery) == 0
	body.Reset()
	var size, sent int64
	inHeader, lineStart := true, true
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return 0, err
		}
		start := lineStart
		lineStart = err == nil // a line longer than the buffer comes in pieces
		if start && len(line) == 3 && line[0] == '.' && line[1] == '\r' && line[2] == '\n' {
			break
		}
		if start && line[0] == '.' {
			line = line[1:] // dot-unstuffing
		}
		size += int64(len(line))
		if inHeader && start {
			if len(line) <= 2 {
				inHeader = false
			} else if len(line) > 12 && (line[0] == 'X' || line[0] == 'x') && strings.EqualFold(string(line[:12]), "X-Load-Sent:") {
				sent, _ = strconv.ParseInt(string(bytes.TrimSpace(line[12:])), 10, 64)
			}
		}
		if keep {
			body.Write(line)
		}
	}
	now := time.Now()
	n := s.msgs.Add(1)
	s.bytes.Add(size)
	s.lastMsg.Store(now.UnixNano())
	s.mu.Lock()
	s.arrivals = append(s.arrivals, int64(now.Sub(s.start)))
	if sent > 0 {
		s.queueLat = append(s.queueLat, now.UnixNano()-sent)
	}
	s.mu.Unlock()
	if keep {
		s.verify(bytes.Clone(body.Bytes()))
	}
	return n, nil
}

// verify checks the DKIM signatures of msg in the background.
func (s *sink) verify(msg []byte) {
	s.dkimWG.Add(1)
	go func() {
		defer s.dkimWG.Done()
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: s.lookupTXT})
		switch {
		case err != nil:
			s.dkimTemp.Add(1)
			s.dkimErr.CompareAndSwap(nil, err.Error())
		case len(vs) == 0:
			s.dkimNone.Add(1)
		default:
			s.dkimSigs.Add(int64(len(vs)))
			ok := true
			for _, v := range vs {
				if v.Err != nil {
					ok = false
					s.dkimErr.CompareAndSwap(nil, v.Domain+": "+v.Err.Error())
				}
			}
			if ok {
				s.dkimPass.Add(1)
			} else {
				s.dkimFail.Add(1)
			}
		}
	}()
}

func (s *sink) lookupTXT(name string) ([]string, error) {
	if v, ok := s.txt[strings.ToLower(strings.TrimSuffix(name, "."))]; ok {
		return []string{v}, nil
	}
	return nil, &net.DNSError{Err: "no such record (smtpsink has only -dkim-txt)", Name: name, IsNotFound: true}
}

// Summary is what the sink prints at the end. Rates are messages per
// second; latencies are milliseconds.
type Summary struct {
	Msgs           int64   `json:"msgs"`
	Bytes          int64   `json:"bytes"`
	Rcpts          int64   `json:"rcpts"`
	Conns          int64   `json:"conns"`
	MaxConcurrent  int64   `json:"max_concurrent_conns"`
	SpanS          float64 `json:"span_s"`        // first to last message
	Rate           float64 `json:"rate"`          // msgs / span
	SteadyS        float64 `json:"steady_s"`      // the trimmed window
	SteadyMsgs     int64   `json:"steady_msgs"`   // messages in it
	SteadyRate     float64 `json:"steady_rate"`   // steady_msgs / steady_s
	QueueSamples   int     `json:"queue_samples"` // messages with X-Load-Sent
	QueueP50       float64 `json:"queue_p50_ms"`
	QueueP90       float64 `json:"queue_p90_ms"`
	QueueP99       float64 `json:"queue_p99_ms"`
	QueueMax       float64 `json:"queue_max_ms"`
	DKIMChecked    int64   `json:"dkim_checked"`
	DKIMPass       int64   `json:"dkim_pass"`
	DKIMFail       int64   `json:"dkim_fail"`
	DKIMNone       int64   `json:"dkim_none"`
	DKIMTemp       int64   `json:"dkim_error"`
	DKIMSignatures int64   `json:"dkim_signatures"`
	DKIMFirstError string  `json:"dkim_first_error,omitempty"`
}

func (s *sink) summary(trim float64) Summary {
	s.mu.Lock()
	arr := s.arrivals
	lat := s.queueLat
	s.mu.Unlock()
	sum := Summary{
		Msgs: s.msgs.Load(), Bytes: s.bytes.Load(), Rcpts: s.rcpts.Load(), Conns: s.conns.Load(),
		MaxConcurrent: s.maxOpen.Load(),
		DKIMPass:      s.dkimPass.Load(), DKIMFail: s.dkimFail.Load(), DKIMNone: s.dkimNone.Load(), DKIMTemp: s.dkimTemp.Load(),
		DKIMSignatures: s.dkimSigs.Load(),
	}
	sum.DKIMChecked = sum.DKIMPass + sum.DKIMFail + sum.DKIMNone + sum.DKIMTemp
	if e, ok := s.dkimErr.Load().(string); ok {
		sum.DKIMFirstError = e
	}
	if len(arr) >= 2 {
		sort.Slice(arr, func(i, j int) bool { return arr[i] < arr[j] })
		first, last := arr[0], arr[len(arr)-1]
		span := last - first
		sum.SpanS = time.Duration(span).Seconds()
		if span > 0 {
			sum.Rate = float64(len(arr)-1) / sum.SpanS
		}
		lo, hi := first+int64(float64(span)*trim), last-int64(float64(span)*trim)
		if hi > lo {
			i := sort.Search(len(arr), func(i int) bool { return arr[i] >= lo })
			j := sort.Search(len(arr), func(i int) bool { return arr[i] > hi })
			sum.SteadyMsgs = int64(j - i)
			sum.SteadyS = time.Duration(hi - lo).Seconds()
			sum.SteadyRate = float64(sum.SteadyMsgs) / sum.SteadyS
		}
	}
	if len(lat) > 0 {
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		sum.QueueSamples = len(lat)
		sum.QueueP50 = ms(pct(lat, 0.50))
		sum.QueueP90 = ms(pct(lat, 0.90))
		sum.QueueP99 = ms(pct(lat, 0.99))
		sum.QueueMax = ms(lat[len(lat)-1])
	}
	return sum
}

// pct is the nearest-rank percentile of sorted values.
func pct(sorted []int64, p float64) int64 {
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func (sum Summary) print(w io.Writer) {
	fmt.Fprintf(w, "smtpsink: %d msgs (%.1f MB) over %d connections, max %d at once\n",
		sum.Msgs, float64(sum.Bytes)/1e6, sum.Conns, sum.MaxConcurrent)
	fmt.Fprintf(w, "rate: %.1f msgs/s over %.2fs; steady %.1f msgs/s over the middle %.2fs\n",
		sum.Rate, sum.SpanS, sum.SteadyRate, sum.SteadyS)
	if sum.QueueSamples > 0 {
		fmt.Fprintf(w, "time in queue (X-Load-Sent to end of DATA here), %d msgs: p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n",
			sum.QueueSamples, sum.QueueP50, sum.QueueP90, sum.QueueP99, sum.QueueMax)
	}
	if sum.DKIMChecked > 0 {
		fmt.Fprintf(w, "dkim: %d checked: %d pass, %d fail, %d unsigned, %d error\n",
			sum.DKIMChecked, sum.DKIMPass, sum.DKIMFail, sum.DKIMNone, sum.DKIMTemp)
		if sum.DKIMFirstError != "" {
			fmt.Fprintf(w, "dkim: first failure: %s\n", sum.DKIMFirstError)
		}
	}
}
