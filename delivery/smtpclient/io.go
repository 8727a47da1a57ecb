package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cuemta/cuemta/smtpreply"
)

// Bounds on what a server may send in one reply: RFC 5321 §4.5.3.1.5
// allows 512 octets per line; we are generous but finite. A longer line
// or reply is a malformed reply, so Reply.Lines never exceed them.
const (
	MaxLineLen    = 4096
	MaxReplyLines = 256
)

// wire is the connection with a deadline on every read and write: each
// Read and Write arms the deadline afresh with the current phase's
// timeout, capped by the caller's context deadline. A cancelled context
// moves the deadline to the past, under the same lock, so a blocked read
// returns at once and no later arming undoes it.
type wire struct {
	mu       sync.Mutex
	nc       net.Conn // raw or *tls.Conn
	timeout  time.Duration
	deadline time.Time // from the caller's context; zero: none
	aborted  error     // the context's error once it fired
	gen      int       // bumped by every bind and unbind, so a late AfterFunc is ignored
}

func (w *wire) arm(read bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted != nil {
		return w.aborted
	}
	t := time.Now().Add(w.timeout)
	if !w.deadline.IsZero() && w.deadline.Before(t) {
		t = w.deadline
	}
	if read {
		return w.nc.SetReadDeadline(t)
	}
	return w.nc.SetWriteDeadline(t)
}

func (w *wire) Read(p []byte) (int, error) {
	if err := w.arm(true); err != nil {
		return 0, err
	}
	return w.nc.Read(p)
}

func (w *wire) Write(p []byte) (int, error) {
	if err := w.arm(false); err != nil {
		return 0, err
	}
	return w.nc.Write(p)
}

// bind ties the wire to ctx until the returned function is called.
func (w *wire) bind(ctx context.Context) func() {
	w.mu.Lock()
	w.deadline, _ = ctx.Deadline()
	w.aborted = nil
	w.gen++
	gen := w.gen
	w.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.gen != gen {
			return
		}
		w.aborted = context.Cause(ctx)
		w.nc.SetDeadline(time.Unix(1, 0))
	})
	return func() {
		stop()
		w.mu.Lock()
		w.deadline, w.aborted = time.Time{}, nil
		w.gen++
		w.mu.Unlock()
	}
}

// swap replaces the connection (after the TLS handshake).
func (w *wire) swap(nc net.Conn) {
	w.mu.Lock()
	w.nc = nc
	w.mu.Unlock()
}

func (w *wire) setTimeout(d time.Duration) {
	w.mu.Lock()
	w.timeout = d
	w.mu.Unlock()
}

// contextErr returns the context's error if it ended the operation: it
// was cancelled, or its deadline (which capped the I/O deadline) passed.
func (w *wire) contextErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aborted != nil {
		return w.aborted
	}
	if !w.deadline.IsZero() && !time.Now().Before(w.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// fail records a network failure: the connection is dead from now on.
func (c *Conn) fail(stage string, err error) error {
	if ce := c.w.contextErr(); ce != nil && !errors.Is(err, ce) {
		err = fmt.Errorf("%w: %w", ce, err)
	}
	ne := &NetError{Stage: stage, Err: err}
	if c.broken == nil {
		c.broken = ne
	}
	c.w.nc.Close()
	return ne
}

// send writes raw bytes and flushes.
func (c *Conn) send(stage string, b []byte) error {
	if _, err := c.bw.Write(b); err != nil {
		return c.fail(stage, err)
	}
	if err := c.bw.Flush(); err != nil {
		return c.fail(stage, err)
	}
	return nil
}

// cmd sends one command line and reads its reply.
func (c *Conn) cmd(stage, line string) (*Reply, error) {
	if err := c.send(stage, []byte(line+"\r\n")); err != nil {
		return nil, err
	}
	return c.readReply(stage)
}

// readReply reads one possibly multi-line reply (RFC 5321 §4.2).
func (c *Conn) readReply(stage string) (*Reply, error) {
	r := &Reply{Stage: stage}
	for n := 0; ; n++ {
		line, err := c.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, c.fail(stage, fmt.Errorf("%w: line longer than %d bytes", ErrMalformedReply, MaxLineLen))
		}
		if err != nil {
			return nil, c.fail(stage, err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) < 3 || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
			return nil, c.fail(stage, fmt.Errorf("%w: %q", ErrMalformedReply, line))
		}
		code, err := strconv.Atoi(string(line[:3]))
		if err != nil || code < 200 || code > 599 {
			return nil, c.fail(stage, fmt.Errorf("%w: %q", ErrMalformedReply, line))
		}
		if n == 0 {
			r.Code = code
		} else if code != r.Code {
			return nil, c.fail(stage, fmt.Errorf("%w: code changed within a reply: %q", ErrMalformedReply, line))
		}
		text := ""
		if len(line) > 4 {
			// RFC 5321 §4.2: reply text has no CR or LF; a stray CR from
			// a broken server would reach the spool, the log and DSNs.
			text = strings.ReplaceAll(string(line[4:]), "\r", " ")
		}
		r.Lines = append(r.Lines, text)
		if len(line) == 3 || line[3] == ' ' {
			break
		}
		if n+1 >= MaxReplyLines {
			return nil, c.fail(stage, fmt.Errorf("%w: more than %d lines", ErrMalformedReply, MaxReplyLines))
		}
	}
	parsed := smtpreply.FromLines(r.Code, r.Lines)
	parsed.Stage = r.Stage
	return &parsed, nil
}
