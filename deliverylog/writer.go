package deliverylog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/cuemta/cuemta/config"
)

const (
	fileBufSize   = 64 << 10
	stdoutBufSize = 16 << 10
	maxPooledBuf  = 64 << 10 // don't keep the buffer of an unusually large event
)

// Writer writes events as JSON lines. It is safe for concurrent use. A
// Writer with neither a file nor stdout configured discards events, and a
// nil *Writer is valid and discards too, so callers never need to check.
type Writer struct {
	now func() time.Time

	mu      sync.Mutex
	path    string // "" when the file is off
	file    *os.File
	fileBuf *bufio.Writer
	size    int64 // bytes in the current file, buffered ones included
	maxSize int64 // 0: never rotate
	keep    int
	out     *bufio.Writer // stdout mirror; nil when off
	closed  bool
	err     error // first error since the last Err call

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// Option adjusts a Writer made by New.
type Option func(*options)

type options struct {
	stdout        io.Writer
	flushInterval time.Duration
	now           func() time.Time
}

// WithStdout replaces os.Stdout as the mirror used when cfg.Stdout is set.
func WithStdout(w io.Writer) Option { return func(o *options) { o.stdout = w } }

// WithFlushInterval sets how often buffered lines are flushed (default 1s;
// 0 flushes only when a buffer fills and on Flush and Close).
func WithFlushInterval(d time.Duration) Option { return func(o *options) { o.flushInterval = d } }

// WithClock sets the clock that stamps events logged with a zero Time.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New opens the log described by cfg: the file cfg.File (created with its
// directory when missing, appended to when present) rotated at cfg.MaxSize
// bytes keeping cfg.Keep old files, and/or stdout when cfg.Stdout is set.
func New(cfg config.Log, opts ...Option) (*Writer, error) {
	o := options{stdout: os.Stdout, flushInterval: time.Second, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if cfg.MaxSize < 0 || cfg.Keep < 0 {
		return nil, fmt.Errorf("deliverylog: maxSize (%d) and keep (%d) must not be negative", cfg.MaxSize, cfg.Keep)
	}
	w := &Writer{
		now:     o.now,
		path:    cfg.File,
		maxSize: cfg.MaxSize,
		keep:    cfg.Keep,
	}
	if cfg.Stdout {
		w.out = bufio.NewWriterSize(o.stdout, stdoutBufSize)
	}
	if w.path != "" {
		w.fileBuf = bufio.NewWriterSize(nil, fileBufSize)
		if err := w.open(); err != nil {
			return nil, err
		}
	}
	if o.flushInterval > 0 && (w.path != "" || w.out != nil) {
		w.stop, w.done = make(chan struct{}), make(chan struct{})
		go w.flushLoop(o.flushInterval)
	}
	return w, nil
}

// Log writes one event. A zero Time is set to now. Logging never blocks on
// a failing disk for long and never fails the caller: errors are kept for
// Err.
func (w *Writer) Log(ev Event) {
	if w == nil || (w.path == "" && w.out == nil) {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = w.now()
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledBuf {
			bufPool.Put(buf)
		}
	}()
	if err := encode(buf, &ev); err != nil {
		w.mu.Lock()
		w.record(err)
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.write(buf.Bytes())
}

// write appends one line; w.mu is held.
func (w *Writer) write(line []byte) {
	if w.path != "" {
		w.writeFile(line)
	}
	if w.out != nil {
		if _, err := w.out.Write(line); err != nil {
			w.record(fmt.Errorf("deliverylog: stdout: %w", err))
		}
	}
}

func (w *Writer) writeFile(line []byte) {
	if w.file == nil {
		// A previous rotation failed to reopen: try again rather than
		// losing the log for the rest of the process.
		if err := w.open(); err != nil {
			w.record(err)
			return
		}
	}
	if w.maxSize > 0 && w.size > 0 && w.size+int64(len(line)) > w.maxSize {
		if err := w.rotate(); err != nil {
			w.record(err)
			if w.file == nil {
				return
			}
		}
	}
	n, err := w.fileBuf.Write(line)
	w.size += int64(n)
	if err != nil {
		w.record(fmt.Errorf("deliverylog: write %s: %w", w.path, err))
	}
}

// Flush writes buffered lines to the file and stdout.
func (w *Writer) Flush() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}

func (w *Writer) flush() error {
	var errs []error
	if w.file != nil {
		if err := w.fileBuf.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("deliverylog: flush %s: %w", w.path, err))
		}
	}
	if w.out != nil {
		if err := w.out.Flush(); err != nil {
			errs = append(errs, fmt.Errorf("deliverylog: flush stdout: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close flushes and closes the log. Events logged afterwards are dropped.
func (w *Writer) Close() error {
	if w == nil {
		return nil
	}
	if w.stop != nil {
		// Stop the flusher before taking the lock it needs.
		w.stopOnce.Do(func() {
			close(w.stop)
			<-w.done
		})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.flush()
	if w.file != nil {
		if cerr := w.file.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("deliverylog: close %s: %w", w.path, cerr))
		}
		w.file = nil
	}
	return err
}

// Err returns the first error met since the previous call (nil if none) and
// forgets it, so that a caller polling it reports each failure spell once.
func (w *Writer) Err() error {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	w.err = nil
	return err
}

func (w *Writer) record(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *Writer) flushLoop(every time.Duration) {
	defer close(w.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			if err := w.flush(); err != nil {
				w.record(err)
			}
			w.mu.Unlock()
		}
	}
}
