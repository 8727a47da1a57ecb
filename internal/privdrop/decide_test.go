package privdrop

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cuemta/cuemta/config"
)

// fakeDirectory is a user and group database in memory.
type fakeDirectory struct {
	users  map[string]fakeUser
	groups map[string]int // name -> gid
}

type fakeUser struct {
	uid, gid int
	groups   []int
}

var errUnknown = errors.New("unknown")

func (d fakeDirectory) LookupUser(n string) (string, int, int, []int, error) {
	if u, ok := d.users[n]; ok {
		return n, u.uid, u.gid, u.groups, nil
	}
	for name, u := range d.users {
		if fmt.Sprint(u.uid) == n {
			return name, u.uid, u.gid, u.groups, nil
		}
	}
	return "", 0, 0, nil, errUnknown
}

func (d fakeDirectory) LookupGroup(n string) (string, int, error) {
	if g, ok := d.groups[n]; ok {
		return n, g, nil
	}
	for name, g := range d.groups {
		if fmt.Sprint(g) == n {
			return name, g, nil
		}
	}
	return "", 0, errUnknown
}

var directory = fakeDirectory{
	users: map[string]fakeUser{
		"root":    {0, 0, []int{0}},
		"nobody":  {65534, 65534, []int{65534}},
		"cuemta":  {998, 998, []int{998, 110}}, // also in ssl-cert
		"alice":   {1000, 1000, []int{1000}},
		"wheeler": {1001, 1001, []int{1001, 0}}, // a member of group root
	},
	groups: map[string]int{"root": 0, "nogroup": 65534, "cuemta": 998, "ssl-cert": 110, "alice": 1000, "mail": 8, "wheeler": 1001},
}

// TestDecide: root or not × user set or not × allowRoot, then the
// accounts that cannot be switched to.
func TestDecide(t *testing.T) {
	root := Process{EUID: 0, Name: "root"}
	alice := Process{EUID: 1000, Name: "alice"}
	cases := []struct {
		name    string
		s       Settings
		p       Process
		want    Plan
		wantErr string // a fragment of the error; "" for none
	}{
		// Not root: the config can only lower privileges, never ask for them.
		{name: "non-root/no user", p: alice, want: Plan{Action: Stay}},
		{name: "non-root/no user/allowRoot", s: Settings{AllowRoot: true}, p: alice, want: Plan{Action: Stay}},
		{name: "non-root/user is self", s: Settings{User: "alice"}, p: alice, want: Plan{Action: Stay}},
		{name: "non-root/user is own uid", s: Settings{User: "1000"}, p: alice, want: Plan{Action: Stay}},
		{name: "non-root/user other", s: Settings{User: "cuemta"}, p: alice,
			want: Plan{Action: Stay, Warning: `not started as root; running as alice (uid 1000), not as user "cuemta"`}},
		{name: "non-root/user other/allowRoot", s: Settings{User: "cuemta", AllowRoot: true}, p: alice,
			want: Plan{Action: Stay, Warning: `not started as root; running as alice (uid 1000), not as user "cuemta"`}},
		{name: "non-root/user unknown here", s: Settings{User: "postfix"}, p: alice,
			want: Plan{Action: Stay, Warning: `not started as root; running as alice (uid 1000), not as user "postfix"`}},

		// Root.
		{name: "root/no user", p: root, wantErr: "set user (and group, when not the user's primary group)"},
		{name: "root/no user/allowRoot", s: Settings{AllowRoot: true}, p: root,
			want: Plan{Action: RunAsRoot, Warning: "running as root (allowRoot: true): every SMTP session and every file cuemta opens has root's privileges; set user to switch to an unprivileged account"}},
		{name: "root/user", s: Settings{User: "nobody"}, p: root,
			want: Plan{Action: Switch, Account: Account{User: "nobody", Group: "nogroup", UID: 65534, GID: 65534, Groups: []int{65534}}}},
		{name: "root/user/allowRoot", s: Settings{User: "nobody", AllowRoot: true}, p: root,
			want: Plan{Action: Switch, Account: Account{User: "nobody", Group: "nogroup", UID: 65534, GID: 65534, Groups: []int{65534}}}},
		{name: "root/user by uid", s: Settings{User: "998"}, p: root,
			want: Plan{Action: Switch, Account: Account{User: "cuemta", Group: "cuemta", UID: 998, GID: 998, Groups: []int{998, 110}}}},
		{name: "root/user and group", s: Settings{User: "cuemta", Group: "mail"}, p: root,
			want: Plan{Action: Switch, Account: Account{User: "cuemta", Group: "mail", UID: 998, GID: 8, Groups: []int{110, 8}}}},
		{name: "root/user and its own group", s: Settings{User: "cuemta", Group: "cuemta"}, p: root,
			want: Plan{Action: Switch, Account: Account{User: "cuemta", Group: "cuemta", UID: 998, GID: 998, Groups: []int{998, 110}}}},

		// Accounts that are not unprivileged, or not there.
		{name: "root/user unknown", s: Settings{User: "postfix"}, p: root, wantErr: `user "postfix": unknown`},
		{name: "root/user unknown/allowRoot", s: Settings{User: "postfix", AllowRoot: true}, p: root, wantErr: `user "postfix": unknown`},
		{name: "root/group unknown", s: Settings{User: "nobody", Group: "staff"}, p: root, wantErr: `group "staff": unknown`},
		{name: "root/user root", s: Settings{User: "root"}, p: root, wantErr: `user "root" is uid 0`},
		{name: "root/user uid 0", s: Settings{User: "0", AllowRoot: true}, p: root, wantErr: `user "0" is uid 0`},
		{name: "root/group root", s: Settings{User: "nobody", Group: "root"}, p: root, wantErr: "group id 0"},
		{name: "root/member of group root", s: Settings{User: "wheeler"}, p: root, wantErr: "group id 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decide(c.s, c.p, directory)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Decide: err %v, want one containing %q (plan %+v)", err, c.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Decide:\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestRootRefusedNamesTheFields: the refusal tells the operator what to
// write.
func TestRootRefusedNamesTheFields(t *testing.T) {
	_, err := Decide(Settings{}, Process{EUID: 0, Name: "root"}, directory)
	if !errors.Is(err, ErrRootRefused) {
		t.Fatalf("err %v, want ErrRootRefused", err)
	}
	for _, field := range []string{"user", "group", "allowRoot: true"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("%q does not name %s", err, field)
		}
	}
}

// TestEmbeddedDefaultRunsAsRoot: `cuemta serve` without -c, the README's
// first command, keeps working when started as root (a fresh machine,
// CI): the embedded default config allows root, with the warning.
func TestEmbeddedDefaultRunsAsRoot(t *testing.T) {
	cfg, err := config.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	plan, err := Decide(Settings{User: cfg.User, Group: cfg.Group, AllowRoot: cfg.AllowRoot}, Process{EUID: 0, Name: "root"}, directory)
	if err != nil {
		t.Fatalf("the embedded default is refused as root: %v", err)
	}
	if plan.Action != RunAsRoot || plan.Warning == "" {
		t.Errorf("plan %+v, want RunAsRoot with its warning", plan)
	}
}
