package queue

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel errors. Errors returned by the spool wrap one of these with
// context; test with errors.Is.
var (
	// ErrNoSpace: the filesystem is full (ENOSPC or EDQUOT). Nothing in the
	// failed call was acknowledged; retry once space has been freed.
	ErrNoSpace = errors.New("no space left for the spool")
	// ErrLowSpace: Enqueue was refused to keep Options.Reserve free on the
	// spool's filesystem (nothing was written). It wraps ErrNoSpace, so
	// IsNoSpace is true for it; retry once space has been freed.
	ErrLowSpace = fmt.Errorf("%w: free space is down to the spool reserve", ErrNoSpace)
	// ErrStorage: any other failed write, fsync, rename or read.
	ErrStorage = errors.New("storage failure")
	// ErrCorrupt: on-disk data failed its checksum or framing outside the
	// torn tail that Open repairs by itself.
	ErrCorrupt = errors.New("spool data corrupt")
	// ErrLocked: another Spool (in this or another process) holds the
	// directory. The concrete error is a *LockedError.
	ErrLocked = errors.New("spool locked")
	// ErrNotFound: no live message has that ID.
	ErrNotFound = errors.New("message not found")
	// ErrExists: Enqueue was given an ID that is already queued.
	ErrExists = errors.New("message ID already queued")
	// ErrClosed: the spool was closed.
	ErrClosed = errors.New("spool closed")
	// ErrConflict: Update lost a race with another change too many times.
	ErrConflict = errors.New("concurrent update")
)

// IsNoSpace reports whether err says the spool's filesystem is full.
func IsNoSpace(err error) bool {
	return errors.Is(err, ErrNoSpace) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// storageErr wraps an I/O failure with the matching sentinel and context,
// keeping the cause reachable for errors.Is/As.
func storageErr(op string, err error) error {
	if errors.Is(err, ErrNoSpace) || errors.Is(err, ErrStorage) || errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("spool: %s: %w", op, err)
	}
	kind := ErrStorage
	if IsNoSpace(err) {
		kind = ErrNoSpace
	}
	return fmt.Errorf("spool: %s: %w: %w", op, kind, err)
}

// LockedError is returned by Open when the directory is held by another
// Spool. It matches ErrLocked.
type LockedError struct {
	Dir string
	PID int // 0 when the lock file did not name one
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("spool %s is locked by another cuemta process (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("spool %s is locked by another cuemta process", e.Dir)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }
