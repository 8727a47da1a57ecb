// Package privdrop decides who `cuemta serve` runs as, and switches to that
// account for good.
//
// Invariant: a server started as root never goes on serving mail as root
// unless its config says allowRoot: true. With user set it binds its
// sockets, makes the paths it writes the user's own, then calls
// setgroups, setgid and setuid (which Go applies to every thread on
// Linux) and checks that root cannot be regained before it reads the
// config again or accepts a connection; with neither it refuses to start.
// A server started as anyone else stays who it is: the config can only
// lower privileges, never ask for them.
package privdrop

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
)

// Settings are the config's user, group and allowRoot.
type Settings struct {
	User      string
	Group     string
	AllowRoot bool
}

// Process is who the process runs as when it starts.
type Process struct {
	EUID int
	Name string // the user name of EUID, or the number when it has none
}

// Current is the running process.
func Current() Process {
	euid := os.Geteuid()
	name := strconv.Itoa(euid)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return Process{EUID: euid, Name: name}
}

// Account is the resolved account to switch to.
type Account struct {
	User, Group string // as resolved, for messages
	UID, GID    int
	// Groups are the supplementary groups set with setgroups: the
	// user's groups in the group database, with GID in place of the
	// primary group when group names another.
	Groups []int
}

func (a Account) String() string {
	return fmt.Sprintf("%s (uid %d, gid %d)", a.User, a.UID, a.GID)
}

// Directory resolves users and groups: System reads the system's
// databases; tests inject their own.
type Directory interface {
	// LookupUser resolves a name or numeric id to its uid, primary gid
	// and every group it belongs to (primary included).
	LookupUser(nameOrID string) (name string, uid, gid int, groups []int, err error)
	// LookupGroup resolves a group name or numeric id to its name and gid.
	LookupGroup(nameOrID string) (name string, gid int, err error)
}

// Action is what serve does about its privileges.
type Action int

const (
	// Stay: not started as root; go on as the current user.
	Stay Action = iota
	// RunAsRoot: started as root, no user, allowRoot: go on as root.
	RunAsRoot
	// Switch: started as root with user: bind, prepare, then drop to
	// Plan.Account.
	Switch
)

// Plan is the decision for one start.
type Plan struct {
	Action  Action
	Account Account // for Switch
	// Warning, when set, is logged once at start.
	Warning string
}

// ErrRootRefused is the error of a start as root with neither user nor
// allowRoot.
var ErrRootRefused = errors.New("started as root with no account to run as: " +
	"set user (and group, when not the user's primary group) to the unprivileged account " +
	"cuemta switches to once its listeners are bound, or allowRoot: true to run as root")

// Decide chooses what serve does, from the config's settings and who the
// process is. An error means serve must not start.
func Decide(s Settings, p Process, d Directory) (Plan, error) {
	if p.EUID != 0 {
		if s.User != "" && s.User != p.Name && s.User != strconv.Itoa(p.EUID) {
			// A developer's `cuemta serve` of a production config, or a
			// unit with User= set that differs: this process cannot
			// switch, and needs not, as it is not root.
			return Plan{Action: Stay, Warning: fmt.Sprintf("not started as root; running as %s (uid %d), not as user %q", p.Name, p.EUID, s.User)}, nil
		}
		return Plan{Action: Stay}, nil
	}
	if s.User == "" {
		if !s.AllowRoot {
			return Plan{}, ErrRootRefused
		}
		return Plan{Action: RunAsRoot, Warning: "running as root (allowRoot: true): every SMTP session and every file cuemta opens has root's privileges; set user to switch to an unprivileged account"}, nil
	}
	a, err := resolve(s, d)
	if err != nil {
		return Plan{}, err
	}
	return Plan{Action: Switch, Account: a}, nil
}

// resolve looks the user and group up and refuses any that is root's.
func resolve(s Settings, d Directory) (Account, error) {
	name, uid, gid, groups, err := d.LookupUser(s.User)
	if err != nil {
		return Account{}, fmt.Errorf("user %q: %w", s.User, err)
	}
	if uid == 0 {
		return Account{}, fmt.Errorf("user %q is uid 0, root itself: name an unprivileged account, or leave user unset and set allowRoot: true to run as root", s.User)
	}
	a := Account{User: name, UID: uid, GID: gid, Group: strconv.Itoa(gid)}
	if g, _, err := d.LookupGroup(strconv.Itoa(gid)); err == nil {
		a.Group = g
	}
	if s.Group != "" {
		g, ggid, err := d.LookupGroup(s.Group)
		if err != nil {
			return Account{}, fmt.Errorf("group %q: %w", s.Group, err)
		}
		a.Group, a.GID = g, ggid
	}
	for _, g := range groups {
		if g == gid && a.GID != gid {
			continue // the primary group, replaced by group
		}
		a.Groups = append(a.Groups, g)
	}
	if !slices.Contains(a.Groups, a.GID) {
		a.Groups = append(a.Groups, a.GID)
	}
	if slices.Contains(a.Groups, 0) {
		// gid 0 reads and writes what the root group owns (/etc/shadow's
		// group on some systems): not an unprivileged account.
		return Account{}, fmt.Errorf("user %q would run with group id 0 (root's group): choose a group and an account outside it", s.User)
	}
	return a, nil
}

// System is the Directory of the system's user and group databases
// (os/user: /etc/passwd and /etc/group without cgo, NSS with it).
type System struct{}

// LookupUser implements Directory.
func (System) LookupUser(nameOrID string) (string, int, int, []int, error) {
	u, err := lookupUser(nameOrID)
	if err != nil {
		return "", 0, 0, nil, err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return "", 0, 0, nil, fmt.Errorf("uid %q is not a number", u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return "", 0, 0, nil, fmt.Errorf("gid %q is not a number", u.Gid)
	}
	var groups []int
	ids, err := u.GroupIds()
	if err != nil {
		return "", 0, 0, nil, fmt.Errorf("groups of %s: %w", u.Username, err)
	}
	for _, id := range ids {
		if g, err := strconv.Atoi(id); err == nil {
			groups = append(groups, g)
		}
	}
	return u.Username, uid, gid, groups, nil
}

// LookupGroup implements Directory.
func (System) LookupGroup(nameOrID string) (string, int, error) {
	g, err := user.LookupGroup(nameOrID)
	if err != nil {
		if _, nerr := strconv.Atoi(nameOrID); nerr == nil {
			g, err = user.LookupGroupId(nameOrID)
		}
	}
	if err != nil {
		return "", 0, err
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return "", 0, fmt.Errorf("gid %q is not a number", g.Gid)
	}
	return g.Name, gid, nil
}

func lookupUser(nameOrID string) (*user.User, error) {
	u, err := user.Lookup(nameOrID)
	if err != nil {
		if _, nerr := strconv.Atoi(nameOrID); nerr == nil {
			return user.LookupId(nameOrID)
		}
	}
	return u, err
}
