package feedback

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cuemta/cuemta/internal/atomicfile"
)

// Store keeps the reports that matched nothing, one file each, named by
// arrival time so that the oldest sorts first; beyond the bound the
// oldest are removed. Reports hold addresses: the directory is 0700 and
// the files 0600, as the spool's.
type Store struct {
	Dir string

	mu   sync.Mutex
	keep int // 0: unbounded
}

// SetKeep sets the bound (feedback.keepUnmatched), applied at the next Put.
func (s *Store) SetKeep(n int) {
	s.mu.Lock()
	s.keep = n
	s.mu.Unlock()
}

// Put writes one report, fsynced, and then trims the directory. The
// returned path is the file written.
func (s *Store) Put(now time.Time, id string, msg []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return "", fmt.Errorf("feedback: unmatched dir: %w", err)
	}
	name := fmt.Sprintf("%020d-%s.eml", now.UnixNano(), id)
	path := filepath.Join(s.Dir, name)
	if err := atomicfile.Write(path, msg, 0o600); err != nil {
		return "", fmt.Errorf("feedback: keep unmatched report: %w", err)
	}
	s.trim()
	return path, nil
}

// trim removes the oldest files beyond Keep. A failure here loses
// nothing just written, so it is not an error of Put.
func (s *Store) trim() {
	if s.keep <= 0 {
		return
	}
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".eml") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for len(names) > s.keep {
		os.Remove(filepath.Join(s.Dir, names[0]))
		names = names[1:]
	}
}
