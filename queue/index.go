package queue

import "sync"

// entry is one live message in memory: 64 bytes plus its encoded envelope
// and the map slot. Bodies are never held here.
type entry struct {
	enc    []byte // encoded envelope; replaced, never modified in place
	next   int64  // NextAttempt in UnixNano: the heap key
	walIdx uint64 // log index of the message's latest put record
	// body frame reference, flattened to keep the struct at 64 bytes
	off          int64
	file, n, crc uint32
	heapPos      int32
}

func (e *entry) ref() bodyRef { return bodyRef{file: e.file, n: e.n, off: e.off, crc: e.crc} }

// fileUse tracks how much of a body file is still referenced.
type fileUse struct {
	live      int   // messages whose body is in the file
	liveBytes int64 // bytes of their frames
	size      int64 // file size
}

// index is the in-memory view of the live queue: messages by ID, a min-heap
// on NextAttempt for Due, and per body file usage for reclamation. Only the
// committer goroutine modifies it (holding mu); others read under RLock.
type index struct {
	mu     sync.RWMutex
	m      map[string]*entry
	heap   []*entry
	files  map[uint32]*fileUse
	active uint32 // body file being appended to
}

func newIndex() *index {
	return &index{m: make(map[string]*entry), files: make(map[uint32]*fileUse)}
}

func (x *index) use(file uint32) *fileUse {
	u := x.files[file]
	if u == nil {
		u = &fileUse{}
		x.files[file] = u
	}
	return u
}

// put inserts or replaces a message's state.
func (x *index) put(id string, enc []byte, next int64, walIdx uint64, ref bodyRef) {
	e := x.m[id]
	switch {
	case e == nil:
		e = &entry{heapPos: -1}
		x.m[id] = e
		x.addUse(ref, len(id))
	case e.file != ref.file || e.off != ref.off:
		x.unuse(e, len(id))
		x.addUse(ref, len(id))
	}
	e.enc, e.walIdx = enc, walIdx
	e.off, e.file, e.n, e.crc = ref.off, ref.file, ref.n, ref.crc
	if e.heapPos < 0 {
		e.next = next
		x.push(e)
	} else if e.next != next {
		e.next = next
		x.fix(int(e.heapPos))
	}
}

func (x *index) addUse(ref bodyRef, idLen int) {
	u := x.use(ref.file)
	u.live++
	u.liveBytes += frameLen(idLen, ref.n)
}

func (x *index) unuse(e *entry, idLen int) {
	if u := x.files[e.file]; u != nil {
		u.live--
		u.liveBytes -= frameLen(idLen, e.n)
	}
}

func (x *index) remove(id string) {
	e := x.m[id]
	if e == nil {
		return
	}
	delete(x.m, id)
	x.unuse(e, len(id))
	x.removeAt(int(e.heapPos))
}

// Min-heap on next. Hand-written rather than container/heap to avoid the
// interface boxing on every operation.

func (x *index) less(i, j int) bool { return x.heap[i].next < x.heap[j].next }

func (x *index) swap(i, j int) {
	h := x.heap
	h[i], h[j] = h[j], h[i]
	h[i].heapPos = int32(i)
	h[j].heapPos = int32(j)
}

func (x *index) push(e *entry) {
	e.heapPos = int32(len(x.heap))
	x.heap = append(x.heap, e)
	x.up(len(x.heap) - 1)
}

func (x *index) removeAt(i int) {
	n := len(x.heap) - 1
	if i != n {
		x.swap(i, n)
	}
	x.heap[n].heapPos = -1
	x.heap[n] = nil
	x.heap = x.heap[:n]
	if i != n {
		x.fix(i)
	}
}

func (x *index) fix(i int) {
	if !x.down(i) {
		x.up(i)
	}
}

func (x *index) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !x.less(j, i) {
			break
		}
		x.swap(i, j)
		j = i
	}
}

func (x *index) down(i0 int) bool {
	i, n := i0, len(x.heap)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && x.less(r, l) {
			j = r
		}
		if !x.less(j, i) {
			break
		}
		x.swap(i, j)
		i = j
	}
	return i > i0
}

// due returns the encodings of up to max entries with next <= now, lowest
// first, without modifying the heap: a small candidate heap of positions
// walks the top of the big one, so the cost is O(max log max).
func (x *index) due(now int64, max int) [][]byte {
	if max <= 0 || len(x.heap) == 0 || x.heap[0].next > now {
		return nil
	}
	var out [][]byte
	cand := []int{0}
	for len(cand) > 0 && len(out) < max {
		// pop the smallest candidate
		p := cand[0]
		last := len(cand) - 1
		cand[0] = cand[last]
		cand = cand[:last]
		siftDownPos(cand, x.heap)
		out = append(out, x.heap[p].enc)
		for _, c := range [2]int{2*p + 1, 2*p + 2} {
			if c < len(x.heap) && x.heap[c].next <= now {
				cand = append(cand, c)
				siftUpPos(cand, x.heap)
			}
		}
	}
	return out
}

func siftUpPos(c []int, h []*entry) {
	j := len(c) - 1
	for j > 0 {
		i := (j - 1) / 2
		if h[c[j]].next >= h[c[i]].next {
			break
		}
		c[i], c[j] = c[j], c[i]
		j = i
	}
}

func siftDownPos(c []int, h []*entry) {
	i, n := 0, len(c)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && h[c[r]].next < h[c[l]].next {
			j = r
		}
		if h[c[j]].next >= h[c[i]].next {
			return
		}
		c[i], c[j] = c[j], c[i]
		i = j
	}
}
