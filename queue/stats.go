package queue

import "time"

// Stats is a snapshot of the spool's size.
type Stats struct {
	Live      int       // live messages
	DiskBytes int64     // log segments plus body files
	Segments  int       // log segment files
	BodyFiles int       // body files
	Oldest    time.Time // Received of the oldest live message; zero if none
}

// Stats reports the spool's size. It scans the index (O(live messages))
// and lists the two data directories.
func (s *Spool) Stats() (Stats, error) {
	var st Stats
	oldest := int64(0)
	s.idx.mu.RLock()
	st.Live = len(s.idx.m)
	for _, e := range s.idx.m {
		if h, err := peekEnvelope(e.enc); err == nil && h.received != zeroTime && (oldest == 0 || h.received < oldest) {
			oldest = h.received
		}
	}
	s.idx.mu.RUnlock()
	if oldest != 0 {
		st.Oldest = nanoTime(oldest)
	}
	segs, _, err := listSegments(s.walDir)
	if err != nil {
		return st, storageErr("stats: list log", err)
	}
	st.Segments = len(segs)
	for _, sg := range segs {
		st.DiskBytes += sg.size
	}
	files, err := listBodyFiles(s.bodyDir)
	if err != nil {
		return st, storageErr("stats: list body files", err)
	}
	st.BodyFiles = len(files)
	for _, size := range files {
		st.DiskBytes += size
	}
	return st, nil
}
