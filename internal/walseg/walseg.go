// Package walseg is what cuemta knows of tidwall/wal v1.2.1's files, for
// the packages that repair or size a log themselves (queue, hooks): a log
// is a directory of segment files, each named by the 20-digit index of
// its first entry and holding entries framed as uvarint(length) + data.
// Nothing here writes a log; wal does.
package walseg

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// Path is the file of the segment whose first entry is start.
func Path(dir string, start uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d", start))
}

// TailStart is the first index of the newest segment in dir (0 if none).
func TailStart(dir string) (uint64, error) {
	d, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return 0, err
	}
	var latest uint64
	for _, name := range names {
		if len(name) != 20 {
			continue
		}
		if v, err := strconv.ParseUint(name, 10, 64); err == nil && v > latest {
			latest = v
		}
	}
	return latest, nil
}
