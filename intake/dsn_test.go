package intake_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cuemta/cuemta/intake"
	"github.com/cuemta/cuemta/internal/dsnparams"
	"github.com/cuemta/cuemta/queue"
	"github.com/cuemta/cuemta/server"
)

// TestPrepareKeepsDSNParameters: RET and ENVID reach the envelope, and
// each recipient keeps its own NOTIFY and ORCPT.
func TestPrepareKeepsDSNParameters(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "c.cue")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("spool: dir: %q\n", filepath.Join(dir, "spool"))), 0o644); err != nil {
		t.Fatal(err)
	}
	snap, err := server.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	env, _, _, err := intake.Prepare(&snap.Policy, &intake.Message{
		From: "a@x.test", Recipients: []string{"b@y.test", "c@y.test", "d@y.test"},
		Body: []byte("Subject: s\r\n\r\nx\r\n"),
		DSN:  dsnparams.Mail{Ret: "HDRS", EnvID: "QQ314159"},
		RcptDSN: []dsnparams.Rcpt{
			{Notify: []string{"NEVER"}},
			{Notify: []string{"SUCCESS", "DELAY"}, ORCPT: "rfc822;C@y.test"},
			{},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if env.Ret != queue.RetHdrs || env.EnvID != "QQ314159" {
		t.Errorf("Ret %v EnvID %q", env.Ret, env.EnvID)
	}
	want := []queue.Recipient{
		{Addr: "b@y.test", Notify: queue.NotifyNever},
		{Addr: "c@y.test", Notify: queue.NotifySuccess | queue.NotifyDelay, ORCPT: "rfc822;C@y.test"},
		{Addr: "d@y.test"},
	}
	for i, r := range env.Recipients {
		if r != want[i] {
			t.Errorf("recipient %d: %+v, want %+v", i, r, want[i])
		}
	}
}
