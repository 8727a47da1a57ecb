package privdrop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Access modes for CheckAccess (access(2)'s R_OK, W_OK, X_OK).
const (
	Read   uint32 = 4
	Write  uint32 = 2
	Search uint32 = 1
)

// PrivateDir makes dir, before the drop, a directory the account owns
// with everything in it. A missing dir is created 0700 (its missing
// parents 0755, owned by root: the account only needs to pass through
// them). An existing dir that is not empty is taken over only when it
// holds marker (the spool's lock file): a config that names a directory
// of other files by mistake (spool.dir "/var") must not hand them to the
// account. Modes are left as they are (the spool keeps its own 0700/0600).
func PrivateDir(dir, marker string, a Account) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(abs); errors.Is(err, fs.ErrNotExist) {
		if err := mkdirs(filepath.Dir(abs), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(abs, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", abs, err)
		}
		return chown(abs, a)
	} else if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	if st, err := os.Stat(real); err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", abs)
	}
	entries, err := os.ReadDir(real)
	if err != nil {
		return err
	}
	if len(entries) > 0 && marker != "" {
		if _, err := os.Lstat(filepath.Join(real, marker)); err != nil {
			return fmt.Errorf("%s is not empty and has no %s file: it is not a cuemta spool, and its files are not handed to user %s; name an empty or new directory", abs, marker, a.User)
		}
	}
	return filepath.WalkDir(real, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return chown(p, a)
	})
}

// LogFile prepares, before the drop, a log file the account appends to
// and rotates (renames file to file.1 … file.keep in its directory). A
// missing directory is created for the account, 0755; an existing one
// is left as it is (it may be /var/log) and CheckAccess must find it
// writable after the drop. The file and its rotated copies, when they
// exist, are given to the account.
func LogFile(file string, keep int, a Account) error {
	if file == "" {
		return nil
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	dir := filepath.Dir(abs)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := mkdirs(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", dir, err)
		}
		if err := chown(dir, a); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	for i := 0; i <= keep; i++ {
		p := abs
		if i > 0 {
			p += "." + strconv.Itoa(i)
		}
		if err := chown(p, a); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// CheckAccess, run after the drop, checks that the process may use path
// with mode (Read|Write|Search). When it may not, the error names the
// first directory above path it cannot pass through, if that is why.
func CheckAccess(path string, mode uint32) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	err = syscall.Access(abs, mode)
	if err == nil {
		return nil
	}
	// From the root down: the first directory without search permission
	// hides everything below it.
	var ancestors []string
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		ancestors = append(ancestors, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(ancestors) - 1; i >= 0; i-- {
		if aerr := syscall.Access(ancestors[i], Search); aerr != nil {
			return fmt.Errorf("cannot pass through %s (no search permission: %w)", ancestors[i], aerr)
		}
	}
	return fmt.Errorf("%s: %w", abs, err)
}

// mkdirs creates dir and its missing parents with perm, whatever the
// umask, so that the account can pass through them.
func mkdirs(dir string, perm fs.FileMode) error {
	var missing []string
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, p)
		if filepath.Dir(p) == p {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], perm); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", missing[i], err)
		}
		if err := os.Chmod(missing[i], perm); err != nil {
			return err
		}
	}
	return nil
}

// chown gives path (not what a symbolic link points to) to the account,
// writing only when it is not the account's already.
func chown(path string, a Account) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == a.UID && int(st.Gid) == a.GID {
		return nil
	}
	if err := os.Lchown(path, a.UID, a.GID); err != nil {
		return fmt.Errorf("give %s to user %s: %w", path, a.User, err)
	}
	return nil
}
