package main

import (
	"strings"
	"testing"

	"github.com/cuemta/cuemta/admin"
)

func TestStatus(t *testing.T) {
	_, args := startAdmin(t, "")
	code, out, stderr := run(runStatus, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The admin address is the test server's: mask its port.
	addr := args[1]
	wantText(t, strings.ReplaceAll(out, addr, "127.0.0.1:PORT"), `hostname     mta.example
version      1.2.3
admin API    127.0.0.1:PORT
uptime       2d2h (since 2026-03-12T13:00:00Z)
ready        yes
generation   4
queue        129 messages
suspensions  1
listeners    mx 0.0.0.0:25 (mx, 12 connections)
             submission 0.0.0.0:587 (submission, 1 connections)
config       /etc/cuemta/main.cue
last reload  2026-03-14T14:00:00Z, refused
  /etc/cuemta/main.cue:12:3: pools.bulk: unknown source
`)
	if code, out, _ := run(runStatus, append(args, "--json")...); code != 0 || !strings.Contains(out, `"generation": 4`) {
		t.Errorf("--json: exit %d, %s", code, out)
	}
	if code, _, _ := run(runStatus, append(args, "extra")...); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}

func TestReload(t *testing.T) {
	b, args := startAdmin(t, "")
	code, out, stderr := run(runReload, args...)
	if code != 0 || out != "reloaded: generation 5\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	b.reload = &admin.ReloadResult{Generation: 4, Errors: []string{
		"/etc/cuemta/main.cue:3:5: listeners.mx.addr: bad port",
		"/etc/cuemta/rules.cue:10:9: rules.message[0].when: undeclared reference to 'foo'",
	}}
	code, out, stderr = run(runReload, args...)
	wantOut := "/etc/cuemta/main.cue:3:5: listeners.mx.addr: bad port\n/etc/cuemta/rules.cue:10:9: rules.message[0].when: undeclared reference to 'foo'\n"
	if code != 1 || out != wantOut || !strings.Contains(stderr, "generation 4 stays in force") {
		t.Errorf("refused: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	code, out, _ = run(runReload, append(args, "--json")...)
	if code != 1 || !strings.Contains(out, `"errors"`) {
		t.Errorf("refused --json: exit %d, %s", code, out)
	}
}
