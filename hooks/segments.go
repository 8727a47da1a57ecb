package hooks

import (
	"encoding/binary"
	"fmt"
	"os"

	"github.com/cuemta/cuemta/internal/walseg"
)

// What this package knows of tidwall/wal v1.2.1's files (as queue/ does):
// a segment is a file named by the 20-digit index of its first entry,
// holding entries framed as uvarint(length) + data.

// repairTail cuts the newest segment after its last entry that frames and
// passes its CRC: what a crash in the middle of a write leaves behind.
func repairTail(dir string) error {
	start, err := walseg.TailStart(dir)
	if err != nil || start == 0 {
		return err
	}
	path := walseg.Path(dir, start)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	off := 0
	for off < len(data) {
		size, n := binary.Uvarint(data[off:])
		if n <= 0 || size > uint64(len(data)-off-n) || !validEntry(data[off+n:off+n+int(size)]) {
			break
		}
		off += n + int(size)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(int64(off)); err != nil {
		return err
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
