package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce lets an editor finish writing (several events, or a
// write-to-temp-then-rename) before the config is read.
const watchDebounce = 300 * time.Millisecond

// configMapDataLink is the symlink a Kubernetes ConfigMap (and Secret)
// volume swaps to publish a new version of all its files at once
// (kubelet's AtomicWriter).
const configMapDataLink = "..data"

// watch reloads when a config file changes. It watches the directories
// that hold the config, not the files: editors that save by renaming a
// new file over the old one replace the inode a file watch would follow.
//
// The directories are watched before watch returns; events are handled
// in the background until ctx ends.
func (s *Server) watch(ctx context.Context) {
	if s.path == "" {
		return // the embedded default cannot change
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.logger.Warn("config watch unavailable; reload with SIGHUP or `cuemta reload`", "err", err)
		return
	}
	dirs := map[string]bool{}
	for _, f := range s.Snapshot().Config.Files {
		dirs[filepath.Dir(f)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			s.logger.Warn("config watch", "dir", d, "err", err)
		}
	}
	relevant := func(name string) bool {
		// A Kubernetes ConfigMap volume updates atomically: it writes a
		// new hidden directory, then renames a "..data" symlink to it.
		// The config's names (cuemta.cue -> ..data/cuemta.cue) never
		// change, so that rename is the only event of an update.
		if filepath.Base(name) == configMapDataLink {
			return true
		}
		if !strings.HasSuffix(name, ".cue") || strings.HasPrefix(filepath.Base(name), ".") {
			return false
		}
		if st, err := os.Stat(s.path); err == nil && !st.IsDir() {
			return filepath.Clean(name) == filepath.Clean(mustAbs(s.path))
		}
		return true
	}
	go s.watchLoop(ctx, w, relevant)
}

func (s *Server) watchLoop(ctx context.Context, w *fsnotify.Watcher, relevant func(string) bool) {
	defer w.Close()
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if relevant(ev.Name) && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				timer = time.After(watchDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			s.logger.Warn("config watch", "err", err)
		case <-timer:
			timer = nil
			s.Reload(ctx, "file")
		}
	}
}

func mustAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
