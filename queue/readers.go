package queue

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
)

// maxReaders bounds the body-file handles bodyReaders keeps open; past
// it one is closed to make room (a spool has few body files in use at
// once: the active one and those that compaction has not emptied yet).
const maxReaders = 64

// bodyReaders keeps a read-only handle per body file, so reading a body
// for delivery is one pread instead of open, fcntl×4, epoll_ctl, pread
// and close (os.Open probes every regular file for the poller). The
// invariant: a handle is dropped before, or at the latest when, its file
// is removed; a read that loses a race with that drop gets os.ErrClosed
// and looks the body up again, as after a move by compaction. A handle
// to a removed file would still read the old bytes, which the frame
// check then accepts or refuses on their own merits.
type bodyReaders struct {
	dir   string
	mu    sync.Mutex
	files map[uint32]*os.File
}

func newBodyReaders(dir string) *bodyReaders {
	return &bodyReaders{dir: dir, files: make(map[uint32]*os.File)}
}

// get returns the open handle of body file num, opening it if needed.
func (r *bodyReaders) get(num uint32) (*os.File, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.files[num]; f != nil {
		return f, nil
	}
	f, err := os.Open(filepath.Join(r.dir, bodyName(num)))
	if err != nil {
		return nil, err
	}
	if len(r.files) >= maxReaders {
		for n, old := range r.files { // any one: readers using it retry
			old.Close()
			delete(r.files, n)
			break
		}
	}
	r.files[num] = f
	return f, nil
}

// drop closes the handle of body file num, which is about to be removed.
func (r *bodyReaders) drop(num uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.files[num]; f != nil {
		f.Close()
		delete(r.files, num)
	}
}

// closeAll closes every handle (the spool is closing).
func (r *bodyReaders) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, f := range r.files {
		f.Close()
		delete(r.files, n)
	}
}

// read returns the body at ref through a kept handle. A missing file or
// a handle closed under it is reported as os.ErrNotExist, for Body to
// look the message up again.
func (r *bodyReaders) read(ref bodyRef, id string) ([]byte, error) {
	f, err := r.get(ref.file)
	if err != nil {
		return nil, err
	}
	b, err := readFrameAt(f, ref, id)
	if errors.Is(err, os.ErrClosed) {
		return nil, os.ErrNotExist
	}
	return b, err
}
