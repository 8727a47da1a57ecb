package queue

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

// v1Envelope is an envelope as the spool wrote it before the SMTPUTF8 and
// 8BITMIME flags existed (captured from that code, not computed here).
const v1Envelope = "0102713180d8ddffcacbc0a930ffffffffffffffffff010d61406578616d706c652e6f7267026d78" +
	"093139322e302e322e31000461636d65000764656661756c7400026b310aa4130207010d62406578616d706c652e636f6d" +
	"000f34353120342e372e31206c61746572"

func v1Fixture() Envelope {
	return Envelope{ID: "q1", From: "a@example.org", Received: time.Unix(1741064767, 0).UTC(),
		Listener: "mx", ClientIP: "192.0.2.1", Tenant: "acme", Pool: "default", DKIM: "k1",
		Priority: 5, Size: 1234, Attempts: 2, Generation: 7,
		Recipients: []Recipient{{Addr: "b@example.com", Status: RcptPending, LastReply: "451 4.7.1 later"}}}
}

// TestEnvelopeFlagsCodec: records written before the flags existed still
// decode (as no flags), an envelope without flags is still written in
// that form byte for byte, each flag survives a round trip in version 2,
// and unknown flag bits are refused rather than silently dropped.
func TestEnvelopeFlagsCodec(t *testing.T) {
	old, _ := hex.DecodeString(v1Envelope)
	got, err := decodeEnvelope(old)
	if err != nil {
		t.Fatalf("decode a version-1 envelope: %v", err)
	}
	if want := v1Fixture(); !envEqual(got, want) || got.SMTPUTF8 || got.EightBitMIME {
		t.Fatalf("version-1 envelope decoded as %+v, want %+v without flags", got, want)
	}
	want := v1Fixture()
	if enc := encodeEnvelope(nil, &want); !bytes.Equal(enc, old) {
		t.Fatalf("an envelope without flags encodes as\n%x\nwant the version-1 bytes\n%x", enc, old)
	}
	for _, tc := range []struct {
		name         string
		utf8, eight  bool
		version, bit byte
	}{
		{"smtputf8", true, false, envVersionFlags, envFlagSMTPUTF8},
		{"8bitmime", false, true, envVersionFlags, envFlagEightBitMIME},
		{"both", true, true, envVersionFlags, envFlagSMTPUTF8 | envFlagEightBitMIME},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := v1Fixture()
			e.SMTPUTF8, e.EightBitMIME = tc.utf8, tc.eight
			enc := encodeEnvelope(nil, &e)
			if enc[0] != tc.version {
				t.Fatalf("version byte %d, want %d", enc[0], tc.version)
			}
			got, err := decodeEnvelope(enc)
			if err != nil || !envEqual(got, e) || got.SMTPUTF8 != tc.utf8 || got.EightBitMIME != tc.eight {
				t.Fatalf("round trip: %+v, %v; want %+v", got, err, e)
			}
			if h, err := peekEnvelope(enc); err != nil || string(h.id) != "q1" {
				t.Fatalf("peekEnvelope: %+v, %v", h, err)
			}
			// The flags byte sits where version 1 has the recipient
			// count; set an unknown bit there.
			bad := bytes.Clone(enc)
			i := bytes.Index(bad, []byte{0x07, tc.bit, 0x01, 0x0d}) // generation 7, flags, 1 recipient, addr length
			if i < 0 {
				t.Fatalf("flags not found after the generation in %x", enc)
			}
			bad[i+1] |= 1 << 5
			if _, err := decodeEnvelope(bad); err == nil {
				t.Fatalf("an envelope with unknown flag bits decoded")
			}
		})
	}
}

// TestEnvelopeFlagsSurviveReopen: the flags are in the spool's log, so a
// message keeps them across a restart.
func TestEnvelopeFlagsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, testOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	flagged, plain := testEnv(1), testEnv(2)
	flagged.SMTPUTF8, flagged.EightBitMIME = true, true
	id1, err := s.Enqueue(ctx, flagged, testBody(1, 100))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := s.Enqueue(ctx, plain, testBody(2, 100))
	if err != nil {
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
	for _, tc := range []struct {
		id          string
		utf8, eight bool
	}{{id1, true, true}, {id2, false, false}} {
		e, ok := s.Get(tc.id)
		if !ok || e.SMTPUTF8 != tc.utf8 || e.EightBitMIME != tc.eight {
			t.Errorf("after reopen %s: found %v, SMTPUTF8 %v, EightBitMIME %v; want %v, %v", tc.id, ok, e.SMTPUTF8, e.EightBitMIME, tc.utf8, tc.eight)
		}
	}
}
