package privdrop

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// dropChildEnv makes the test binary, run again by TestDrop, drop to
// nobody and report instead of running the tests: a drop cannot be
// undone, so it happens in a process of its own.
const dropChildEnv = "CUEMTA_PRIVDROP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(dropChildEnv) != "" {
		a := account
		a.Groups = []int{65534, 100}
		if err := Drop(a); err != nil {
			fmt.Println("drop:", err)
			os.Exit(1)
		}
		groups, _ := syscall.Getgroups()
		fmt.Printf("uid=%d euid=%d gid=%d egid=%d groups=%v setuid0=%v\n",
			syscall.Getuid(), syscall.Geteuid(), syscall.Getgid(), syscall.Getegid(), groups, syscall.Setuid(0))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestDrop: a process that drops has the account's ids and groups, and
// root cannot be regained; Verify refuses a process that did not drop.
func TestDrop(t *testing.T) {
	needRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), dropChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	want := "uid=65534 euid=65534 gid=65534 egid=65534 groups=[100 65534] setuid0=operation not permitted\n"
	if got := string(out); !strings.HasSuffix(got, want) {
		t.Errorf("child reported\n%s\nwant\n%s", got, want)
	}

	// This process is still root: Verify must say so.
	if err := Verify(account); err == nil || !strings.Contains(err.Error(), "uid 0") {
		t.Errorf("Verify as root: %v, want an error naming uid 0", err)
	}
	if err := Drop(Account{User: "root"}); err == nil {
		t.Error("Drop to uid 0 succeeded")
	}
}
