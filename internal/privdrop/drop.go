package privdrop

import (
	"fmt"
	"slices"
	"syscall"
)

// Drop switches the process to the account for good: supplementary
// groups, then the group, then the user (the group first: once the uid is
// not 0, setgid is no longer allowed). Since Go 1.16 each of these calls
// applies to every thread of the process on Linux, so no goroutine keeps
// root. Drop then checks the result with Verify.
func Drop(a Account) error {
	if a.UID == 0 || a.GID == 0 {
		return fmt.Errorf("drop to %s: refusing to switch to root's ids", a)
	}
	if err := syscall.Setgroups(a.Groups); err != nil {
		return fmt.Errorf("drop to %s: setgroups %v: %w", a, a.Groups, err)
	}
	// setgid and setuid set the real, effective and saved ids alike when
	// called by root: the saved id is what would let a process get root
	// back, and it goes too.
	if err := syscall.Setgid(a.GID); err != nil {
		return fmt.Errorf("drop to %s: setgid %d: %w", a, a.GID, err)
	}
	if err := syscall.Setuid(a.UID); err != nil {
		return fmt.Errorf("drop to %s: setuid %d: %w", a, a.UID, err)
	}
	return Verify(a)
}

// Verify checks that the process runs as the account and cannot become
// root again: its real and effective ids are the account's, its groups
// are the account's, and setuid(0) and setgid(0) fail.
func Verify(a Account) error {
	if uid, euid := syscall.Getuid(), syscall.Geteuid(); uid != a.UID || euid != a.UID {
		return fmt.Errorf("after the drop to %s: uid %d, euid %d", a, uid, euid)
	}
	if gid, egid := syscall.Getgid(), syscall.Getegid(); gid != a.GID || egid != a.GID {
		return fmt.Errorf("after the drop to %s: gid %d, egid %d", a, gid, egid)
	}
	groups, err := syscall.Getgroups()
	if err != nil {
		return fmt.Errorf("after the drop to %s: getgroups: %w", a, err)
	}
	want := slices.Compact(slices.Sorted(slices.Values(a.Groups)))
	slices.Sort(groups)
	if groups = slices.Compact(groups); !slices.Equal(groups, want) {
		return fmt.Errorf("after the drop to %s: groups %v, want %v", a, groups, want)
	}
	if err := syscall.Setuid(0); err == nil {
		return fmt.Errorf("after the drop to %s: setuid(0) succeeded: root can be regained", a)
	}
	if err := syscall.Setgid(0); err == nil {
		return fmt.Errorf("after the drop to %s: setgid(0) succeeded: root's group can be regained", a)
	}
	return nil
}
