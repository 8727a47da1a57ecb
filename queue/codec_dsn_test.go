package queue

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

// v2Envelope is v1Fixture with SMTPUTF8 set, as the spool wrote it before
// DSN parameters existed (captured from that code, not computed here).
const v2Envelope = "0202713180d8ddffcacbc0a930ffffffffffffffffff010d61406578616d706c652e6f7267026d78" +
	"093139322e302e322e31000461636d65000764656661756c7400026b310aa413020701010d62406578616d706c652e636f6d" +
	"000f34353120342e372e31206c61746572"

// TestEnvelopeDSNCodec: envelopes without DSN parameters keep their
// version 1 and 2 bytes; each DSN parameter alone makes a version-3
// record that round-trips; unknown RET values and NOTIFY bits are refused.
func TestEnvelopeDSNCodec(t *testing.T) {
	old, _ := hex.DecodeString(v2Envelope)
	e := v1Fixture()
	e.SMTPUTF8 = true
	if enc := encodeEnvelope(nil, &e); !bytes.Equal(enc, old) {
		t.Fatalf("a flagged envelope without DSN parameters encodes as\n%x\nwant the version-2 bytes\n%x", enc, old)
	}
	if got, err := decodeEnvelope(old); err != nil || !envEqual(got, e) {
		t.Fatalf("version-2 envelope decoded as %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Envelope)
	}{
		{"envid", func(e *Envelope) { e.EnvID = "QQ314159" }},
		{"ret full", func(e *Envelope) { e.Ret = RetFull }},
		{"ret hdrs", func(e *Envelope) { e.Ret = RetHdrs }},
		{"notify never", func(e *Envelope) { e.Recipients[0].Notify = NotifyNever }},
		{"notify all", func(e *Envelope) { e.Recipients[0].Notify = NotifySuccess | NotifyFailure | NotifyDelay }},
		{"orcpt", func(e *Envelope) { e.Recipients[0].ORCPT = "rfc822;B@example.com" }},
		{"delay notified", func(e *Envelope) { e.Recipients[0].DelayNotified = true }},
		{"with flags", func(e *Envelope) {
			e.SMTPUTF8, e.EightBitMIME, e.Recipients[0].ORCPT = true, true, "utf-8;bü@example.com"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := v1Fixture()
			e.Recipients = append(e.Recipients, Recipient{Addr: "c@example.com", Status: RcptDelivered})
			tc.change(&e)
			enc := encodeEnvelope(nil, &e)
			if enc[0] != envVersionDSN {
				t.Fatalf("version byte %d, want %d", enc[0], envVersionDSN)
			}
			got, err := decodeEnvelope(enc)
			if err != nil || !envEqual(got, e) {
				t.Fatalf("round trip: %+v, %v; want %+v", got, err, e)
			}
			if h, err := peekEnvelope(enc); err != nil || string(h.id) != "q1" {
				t.Fatalf("peekEnvelope: %+v, %v", h, err)
			}
		})
	}
	e = v1Fixture()
	e.EnvID = "X"
	enc := encodeEnvelope(nil, &e)
	// generation 7, flags 0, envid "X", ret: set an unknown RET.
	i := bytes.Index(enc, []byte{0x07, 0x00, 0x01, 'X', 0x00})
	if i < 0 {
		t.Fatalf("DSN fields not found after the generation in %x", enc)
	}
	bad := bytes.Clone(enc)
	bad[i+4] = 3
	if _, err := decodeEnvelope(bad); err == nil {
		t.Error("an envelope with RET value 3 decoded")
	}
	// The recipient's DSN byte is the second-to-last (orcpt "" follows).
	bad = bytes.Clone(enc)
	bad[len(bad)-2] = 1 << 5
	if _, err := decodeEnvelope(bad); err == nil {
		t.Error("an envelope with unknown NOTIFY bits decoded")
	}
}

func TestNotifyWants(t *testing.T) {
	tests := []struct {
		n                       Notify
		success, failure, delay bool
		str                     string
	}{
		{0, false, true, true, ""},
		{NotifyNever, false, false, false, "NEVER"},
		{NotifySuccess, true, false, false, "SUCCESS"},
		{NotifyFailure | NotifyDelay, false, true, true, "FAILURE,DELAY"},
		{NotifySuccess | NotifyFailure | NotifyDelay, true, true, true, "SUCCESS,FAILURE,DELAY"},
	}
	for _, tt := range tests {
		if tt.n.Wants(NotifySuccess) != tt.success || tt.n.Wants(NotifyFailure) != tt.failure || tt.n.Wants(NotifyDelay) != tt.delay {
			t.Errorf("%v: Wants success/failure/delay = %v/%v/%v", tt.n, tt.n.Wants(NotifySuccess), tt.n.Wants(NotifyFailure), tt.n.Wants(NotifyDelay))
		}
		if tt.n.String() != tt.str {
			t.Errorf("Notify(%d).String() = %q, want %q", tt.n, tt.n.String(), tt.str)
		}
	}
}

// TestDSNStateSurvivesReopen: the DSN parameters and the delay-warning
// mark set by RecordAttempt are in the spool's log, so a restart keeps
// them and sends no second warning.
func TestDSNStateSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	e := testEnv(1)
	e.EnvID, e.Ret = "QQ314159", RetFull
	e.Recipients[0].Notify, e.Recipients[0].ORCPT = NotifyDelay, "rfc822;X@example.com"
	id, err := s.Enqueue(ctx, e, testBody(1, 100))
	if err != nil {
		t.Fatal(err)
	}
	addr := e.Recipients[0].Addr
	if err := s.RecordAttempt(id, []RecipientResult{{Addr: addr, Status: RcptPending, Reply: "451 4.7.1 later", DelayNotified: true}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A later attempt that does not set the mark keeps it.
	if err := s.RecordAttempt(id, []RecipientResult{{Addr: addr, Status: RcptPending, Reply: "451 4.7.1 later"}}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, ok := s.Get(id)
	if !ok || got.EnvID != "QQ314159" || got.Ret != RetFull {
		t.Fatalf("after reopen: found %v, EnvID %q, Ret %v", ok, got.EnvID, got.Ret)
	}
	r := got.Recipients[0]
	if r.Notify != NotifyDelay || r.ORCPT != "rfc822;X@example.com" || !r.DelayNotified {
		t.Errorf("recipient after reopen: %+v", r)
	}
}
