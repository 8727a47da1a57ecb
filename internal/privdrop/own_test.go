package privdrop

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// account is who the tests hand files to: any ids will do for chown.
var account = Account{User: "nobody", Group: "nogroup", UID: 65534, GID: 65534, Groups: []int{65534}}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("chown needs root; run as root (as CI does) to test taking files over")
	}
}

func owner(t *testing.T, p string) (uid, gid int, mode fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode().Perm()
}

// TestPrivateDir: what is created, what is taken over, and the directory
// that is refused because it is not a spool.
func TestPrivateDir(t *testing.T) {
	needRoot(t)
	old := syscall.Umask(0o077) // parents must still be 0755
	defer syscall.Umask(old)

	t.Run("missing", func(t *testing.T) {
		base := t.TempDir()
		dir := filepath.Join(base, "var", "lib", "spool")
		if err := PrivateDir(dir, "LOCK", account); err != nil {
			t.Fatal(err)
		}
		if uid, gid, mode := owner(t, dir); uid != 65534 || gid != 65534 || mode != 0o700 {
			t.Errorf("spool dir: %d:%d %v, want 65534:65534 0700", uid, gid, mode)
		}
		for _, p := range []string{filepath.Join(base, "var"), filepath.Join(base, "var", "lib")} {
			if uid, _, mode := owner(t, p); uid != 0 || mode != 0o755 {
				t.Errorf("parent %s: uid %d %v, want root's, 0755 (despite umask 077)", p, uid, mode)
			}
		}
	})
	t.Run("empty", func(t *testing.T) {
		dir := t.TempDir()
		if err := PrivateDir(dir, "LOCK", account); err != nil {
			t.Fatal(err)
		}
		if uid, _, _ := owner(t, dir); uid != 65534 {
			t.Errorf("uid %d, want 65534", uid)
		}
	})
	t.Run("spool", func(t *testing.T) {
		dir := t.TempDir()
		for _, p := range []string{"wal", "body"} {
			if err := os.Mkdir(filepath.Join(dir, p), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []string{"LOCK", "wal/00000000000000000001", "body/1", "shaping.json"} {
			if err := os.WriteFile(filepath.Join(dir, p), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := PrivateDir(dir, "LOCK", account); err != nil {
			t.Fatal(err)
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			want := fs.FileMode(0o600)
			if d.IsDir() {
				want = 0o700
			}
			if p == dir {
				return nil // t.TempDir's own mode
			}
			if uid, gid, mode := owner(t, p); uid != 65534 || gid != 65534 || mode != want {
				t.Errorf("%s: %d:%d %v, want 65534:65534 %v (modes kept)", p, uid, gid, mode, want)
			}
			return nil
		})
	})
	t.Run("not a spool", func(t *testing.T) {
		dir := t.TempDir()
		f := filepath.Join(dir, "passwd")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		err := PrivateDir(dir, "LOCK", account)
		if err == nil || !strings.Contains(err.Error(), "not a cuemta spool") {
			t.Fatalf("err %v, want a refusal of a directory that is not a spool", err)
		}
		if uid, _, _ := owner(t, f); uid != 0 {
			t.Errorf("a file of a refused directory was given away (uid %d)", uid)
		}
	})
	t.Run("a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "spool")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := PrivateDir(f, "LOCK", account); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Fatalf("err %v, want not a directory", err)
		}
	})
}

// TestLogFile: a new log directory is the account's; an existing one is
// left alone while the log and its rotated copies are taken over.
func TestLogFile(t *testing.T) {
	needRoot(t)
	t.Run("new directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "log", "cuemta")
		if err := LogFile(filepath.Join(dir, "delivery.log"), 5, account); err != nil {
			t.Fatal(err)
		}
		if uid, _, mode := owner(t, dir); uid != 65534 || mode != 0o755 {
			t.Errorf("log dir: uid %d %v, want 65534 0755", uid, mode)
		}
	})
	t.Run("existing directory", func(t *testing.T) {
		dir := t.TempDir()
		for _, n := range []string{"delivery.log", "delivery.log.1", "delivery.log.2", "other.log"} {
			if err := os.WriteFile(filepath.Join(dir, n), nil, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		if err := LogFile(filepath.Join(dir, "delivery.log"), 2, account); err != nil {
			t.Fatal(err)
		}
		for n, want := range map[string]int{"delivery.log": 65534, "delivery.log.1": 65534, "delivery.log.2": 65534, "other.log": 0} {
			if uid, _, _ := owner(t, filepath.Join(dir, n)); uid != want {
				t.Errorf("%s: uid %d, want %d", n, uid, want)
			}
		}
		if uid, _, _ := owner(t, dir); uid != 0 {
			t.Errorf("an existing log directory was given away (uid %d)", uid)
		}
	})
	t.Run("none", func(t *testing.T) {
		if err := LogFile("", 5, account); err != nil {
			t.Fatal(err)
		}
	})
}
