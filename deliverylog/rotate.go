package deliverylog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// open opens (or creates) w.path for appending; w.mu is held or w is not
// yet shared.
func (w *Writer) open() error {
	if err := os.MkdirAll(filepath.Dir(w.path), 0o755); err != nil {
		return fmt.Errorf("deliverylog: create directory for %s: %w", w.path, err)
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("deliverylog: open %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("deliverylog: stat %s: %w", w.path, err)
	}
	w.file, w.size = f, st.Size()
	w.fileBuf.Reset(f)
	return nil
}

// rotate renames file.N-1 → file.N … file → file.1 (dropping the oldest)
// and reopens file empty. With keep 0 the full file is simply removed.
// Renames keep readers such as `tail -F` working and need no copying.
func (w *Writer) rotate() error {
	var errs []error
	if err := w.fileBuf.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("deliverylog: flush %s before rotation: %w", w.path, err))
	}
	if err := w.file.Close(); err != nil {
		errs = append(errs, fmt.Errorf("deliverylog: close %s before rotation: %w", w.path, err))
	}
	w.file = nil
	if w.keep == 0 {
		if err := os.Remove(w.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("deliverylog: rotate: %w", err))
		}
	} else {
		for i := w.keep - 1; i >= 1; i-- {
			if err := os.Rename(w.rotated(i), w.rotated(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("deliverylog: rotate: %w", err))
			}
		}
		if err := os.Rename(w.path, w.rotated(1)); err != nil {
			errs = append(errs, fmt.Errorf("deliverylog: rotate: %w", err))
		}
	}
	if err := w.open(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// rotated is the name of the i-th most recent rotated file.
func (w *Writer) rotated(i int) string { return w.path + "." + strconv.Itoa(i) }
