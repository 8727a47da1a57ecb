package server

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cuemta/cuemta/config"
	"github.com/cuemta/cuemta/internal/privdrop"
	"github.com/cuemta/cuemta/queue"
)

// PrepareFor makes what the server writes the account's own, before
// serve drops root for it: the spool directory with everything in it,
// and the delivery log file with its rotated copies (and its directory
// when it has to be created). The config files, keys and certificates
// are only read, and stay as the operator made them.
func PrepareFor(cfg *config.Config, a privdrop.Account) error {
	if err := privdrop.PrivateDir(cfg.Spool.Dir, queue.LockFile, a); err != nil {
		return fmt.Errorf("spool.dir %s: %w", cfg.Spool.Dir, err)
	}
	if err := privdrop.LogFile(cfg.Log.File, cfg.Log.Keep, a); err != nil {
		return fmt.Errorf("log.file %s: %w", cfg.Log.File, err)
	}
	return nil
}

// CheckAfterDrop, run as the account, checks that it can use what
// PrepareFor gave it: a spool or log below a directory the account
// cannot pass through (a 0700 home directory) is refused at start, with
// that directory named, rather than failing on the first message.
func CheckAfterDrop(cfg *config.Config, a privdrop.Account) error {
	rw := privdrop.Read | privdrop.Write | privdrop.Search
	if err := privdrop.CheckAccess(cfg.Spool.Dir, rw); err != nil {
		return fmt.Errorf("spool.dir %s: user %s cannot use it: %w", cfg.Spool.Dir, a.User, err)
	}
	if cfg.Log.File != "" {
		// Rotation creates and renames files in the log's directory.
		dir := filepath.Dir(cfg.Log.File)
		if err := privdrop.CheckAccess(dir, privdrop.Write|privdrop.Search); err != nil {
			return fmt.Errorf("log.file %s: user %s cannot create and rotate files in %s: %w", cfg.Log.File, a.User, dir, err)
		}
	}
	return nil
}

// privilegePos is where the config sets user, group or allowRoot, for a
// reload that changes them.
func privilegePos(cfg *config.Config) config.Pos {
	for _, f := range []string{"user", "group", "allowRoot"} {
		if p := cfg.PosOf(f); p.IsValid() && !strings.HasPrefix(p.File, "builtin:") {
			return p
		}
	}
	return config.Pos{}
}
