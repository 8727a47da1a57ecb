package reception

import (
	"errors"
	"io"
	"sync"
)

// chunkSize is the unit in which message data is reserved and buffered.
// A transaction holds at most one chunk more than it has been sent; 64 KiB
// keeps that slack small (2,000 sessions hold 128 MiB at worst) while a
// 50 MB message is still only 800 chunks.
const chunkSize = 64 << 10

// chunkPool recycles chunks between transactions, so a steady stream of
// messages reuses the same memory instead of leaving garbage behind.
var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, chunkSize)
	return &b
}}

// errOverBudget is returned by messageBuffer.readFrom when the Budget
// refuses the next chunk.
var errOverBudget = errors.New("reception: message bytes in flight over budget")

// messageBuffer holds one message's data as it arrives. The data goes into
// fixed-size chunks, each reserved in the Budget before it is filled, so
// memory is never committed ahead of the client's bytes and buffering does
// not grow-and-copy (a growing contiguous buffer leaves as much garbage as
// it holds, which the garbage collector may let double the process's
// memory). assemble then makes the stored message with a single copy.
//
// The zero value is unusable; a messageBuffer belongs to one transaction
// and its owner calls release when the transaction ends, whatever the
// outcome.
type messageBuffer struct {
	budget   *Budget
	chunks   []*[]byte
	n        int   // bytes of data held in chunks
	reserved int64 // bytes reserved in budget
	out      []byte
}

func newMessageBuffer(b *Budget) *messageBuffer { return &messageBuffer{budget: b} }

// readFrom reads r to its end. Before each new chunk it reserves chunkSize
// bytes; when the budget refuses, it releases everything it holds and
// returns errOverBudget, leaving the rest of r unread.
func (m *messageBuffer) readFrom(r io.Reader) error {
	for {
		if m.n == len(m.chunks)*chunkSize {
			if !m.budget.reserve(chunkSize) {
				m.release()
				return errOverBudget
			}
			m.reserved += chunkSize
			m.chunks = append(m.chunks, chunkPool.Get().(*[]byte))
		}
		c := *m.chunks[len(m.chunks)-1]
		k, err := r.Read(c[m.n%chunkSize:])
		m.n += k
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// len returns the bytes of data read.
func (m *messageBuffer) len() int { return m.n }

// assemble copies the data, once, into one buffer with front free bytes
// before it and back free bytes after it, returns that buffer (the data at
// [front:front+len]) and gives the chunks back to the pool. The buffer is
// reserved in the budget in place of the chunks, unconditionally: the
// client has sent every byte, and refusing now would only make it send
// them again. For the length of the copy the message exists twice.
func (m *messageBuffer) assemble(front, back int) []byte {
	out := make([]byte, front+m.n+back)
	m.budget.force(int64(len(out)))
	m.reserved += int64(len(out))
	rest := out[front : front+m.n]
	for _, c := range m.chunks {
		rest = rest[copy(rest, *c):]
	}
	m.putChunks()
	m.out = out
	return out
}

// release gives back every chunk and every reserved byte. It is safe to
// call more than once.
func (m *messageBuffer) release() {
	m.putChunks()
	m.out = nil
	m.n = 0
	m.budget.release(m.reserved)
	m.reserved = 0
}

// putChunks returns the chunks to the pool and their reservation to the
// budget.
func (m *messageBuffer) putChunks() {
	for _, c := range m.chunks {
		chunkPool.Put(c)
	}
	m.budget.release(int64(len(m.chunks)) * chunkSize)
	m.reserved -= int64(len(m.chunks)) * chunkSize
	m.chunks = nil
}
