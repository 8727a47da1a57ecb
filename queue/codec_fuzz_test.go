package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fuzzEnvelope builds an envelope from fuzzed fields in the form the spool
// returns: UTC times at nanosecond precision (or zero), nil Recipients
// when there are none.
func fuzzEnvelope(id, from, strs string, recv, next int64, prio, attempts int, size int64, gen uint64, rcpts []byte) Envelope {
	t := func(n int64) time.Time {
		if n == zeroTime {
			return time.Time{}
		}
		return time.Unix(0, n).UTC()
	}
	parts := bytes.Split([]byte(strs), []byte{0})
	s := func(i int) string {
		if i < len(parts) {
			return string(parts[i])
		}
		return ""
	}
	e := Envelope{
		ID: id, From: from, Received: t(recv), NextAttempt: t(next),
		Listener: s(0), ClientIP: s(1), User: s(2), Tenant: s(3), Campaign: s(4), Pool: s(5), Route: s(6), DKIM: s(7),
		Priority: prio, Size: size, Attempts: attempts, Generation: gen,
	}
	// Recipients: each byte is a status, the address and reply derived
	// from the parts after the fixed fields.
	for i, c := range rcpts {
		e.Recipients = append(e.Recipients, Recipient{Addr: s(8 + 2*i), Status: RcptStatus(c), LastReply: s(9 + 2*i)})
	}
	return e
}

// FuzzEnvelopeRoundTrip: decodeEnvelope(encodeEnvelope(e)) == e for any
// envelope, and peekEnvelope agrees with it on the head fields.
func FuzzEnvelopeRoundTrip(f *testing.F) {
	f.Add("q1", "a@example.org", "mx\x00192.0.2.1\x00\x00acme\x00c1\x00default\x00\x00k1\x00b@example.com\x00250 ok",
		int64(1741064767000000000), int64(zeroTime), 5, 0, int64(1234), uint64(7), []byte{0})
	f.Add("", "", "", int64(zeroTime), int64(zeroTime), 0, 0, int64(0), uint64(0), []byte(nil))
	f.Add("ü\x00", "<>", "\x00\x00\x00\x00\x00\x00\x00\x00r1\x00550 5.1.1\r\nno\x00r2\x00", int64(-1), int64(math.MaxInt64),
		math.MinInt, math.MaxInt, int64(math.MinInt64), uint64(math.MaxUint64), []byte{1, 2, 3, 255})
	f.Fuzz(func(t *testing.T, id, from, strs string, recv, next int64, prio, attempts int, size int64, gen uint64, rcpts []byte) {
		// Each input is tried with every combination of the flags, so
		// both envelope versions (1 without flags, 2 with) are covered
		// without changing the target's arguments (and its corpus).
		for flags := range 4 {
			e := fuzzEnvelope(id, from, strs, recv, next, prio, attempts, size, gen, rcpts)
			e.SMTPUTF8, e.EightBitMIME = flags&1 != 0, flags&2 != 0
			roundTrip(t, e)
		}
	})
}

// roundTrip checks one envelope: decode(encode(e)) == e, peekEnvelope
// agrees on the head, and no proper prefix decodes.
func roundTrip(t *testing.T, e Envelope) {
	t.Helper()
	enc := encodeEnvelope([]byte("prefix"), &e)[len("prefix"):]
	got, err := decodeEnvelope(enc)
	if err != nil {
		t.Fatalf("decode(encode(%#v)): %v", e, err)
	}
	if !reflect.DeepEqual(got, e) {
		t.Fatalf("round trip changed the envelope:\n got %#v\nwant %#v", got, e)
	}
	h, err := peekEnvelope(enc)
	if err != nil || string(h.id) != e.ID || h.received != timeNano(e.Received) || h.next != timeNano(e.NextAttempt) {
		t.Fatalf("peekEnvelope = %+v, %v; want id %q received %d next %d", h, err, e.ID, timeNano(e.Received), timeNano(e.NextAttempt))
	}
	// Every proper prefix is refused (sampled: at most ~64 decodes).
	for n := 0; n < len(enc); n += 1 + len(enc)/64 {
		if _, err := decodeEnvelope(enc[:n]); err == nil {
			t.Fatalf("a %d-byte prefix of a %d-byte envelope decoded without error", n, len(enc))
		}
	}
	if n := len(enc) - 1; n >= 0 {
		if _, err := decodeEnvelope(enc[:n]); err == nil {
			t.Fatalf("a %d-byte prefix of a %d-byte envelope decoded without error", n, len(enc))
		}
	}
}

// FuzzDecodeEnvelope: decodeEnvelope never panics on arbitrary bytes, and
// a successful decode re-encodes to the same bytes except where the input
// used a longer varint than needed (the encoder writes the shortest): so
// the re-encoding is never longer, is identical when as long, and decodes
// to the same envelope.
func FuzzDecodeEnvelope(f *testing.F) {
	e := fuzzEnvelope("q1", "a@example.org", "mx\x00ip\x00\x00t\x00\x00p\x00\x00\x00b@example.com\x00ok",
		1741064767000000000, zeroTime, 5, 2, 1234, 7, []byte{0})
	f.Add(encodeEnvelope(nil, &e))
	f.Add(encodeEnvelope(nil, &Envelope{}))
	f.Add([]byte{envVersion})
	f.Add([]byte{2, 0})
	f.Add(append(encodeEnvelope(nil, &e), 0))
	flagged := e
	flagged.SMTPUTF8, flagged.EightBitMIME = true, true
	f.Add(encodeEnvelope(nil, &flagged))
	withDSN := flagged
	withDSN.EnvID, withDSN.Ret = "QQ314159", RetHdrs
	withDSN.Recipients = []Recipient{{Addr: "b@example.com", Notify: NotifySuccess | NotifyDelay, ORCPT: "rfc822;B@example.com", DelayNotified: true}}
	f.Add(encodeEnvelope(nil, &withDSN))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		re := encodeEnvelope(nil, &e)
		if len(re) > len(b) || (len(re) == len(b) && !bytes.Equal(re, b)) {
			t.Fatalf("decoded %x as %#v, which encodes as %x", b, e, re)
		}
		e2, err := decodeEnvelope(re)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encoding of %#v decodes as %#v, %v", e, e2, err)
		}
	})
}

// FuzzDecodeRecord: decodeRecord never panics on arbitrary bytes; a
// record it accepts re-encodes (appendPut/appendDone) to a record that
// decodes to the same fields, is never longer than the input, and is
// byte-identical when as long (only over-long varints may differ).
// The seeds are sealed records; the fuzzer mostly breaks their CRC, so
// the target also re-seals a copy of its input and decodes that.
func FuzzDecodeRecord(f *testing.F) {
	e := testEnv(1)
	e.ID = "q1"
	env := encodeEnvelope(nil, e)
	f.Add(appendPut(nil, 3, bodyRef{file: 2, n: 100, off: 4096, crc: 0xdeadbeef}, env))
	f.Add(appendPut(nil, math.MaxUint64, bodyRef{file: math.MaxUint32, n: math.MaxUint32, off: math.MaxInt64, crc: 0}, env))
	f.Add(appendDone(nil, 4, "q1", OutcomeDelivered, "250 ok"))
	f.Add(appendDone(nil, 0, "", Outcome(0), ""))
	f.Add([]byte{0, 0, 0, 0, 9})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, b)
		if len(b) >= 5 {
			sealed := bytes.Clone(b)
			sealRecord(sealed, 0)
			check(t, sealed)
		}
	})
}

func check(t *testing.T, b []byte) {
	t.Helper()
	rec, err := decodeRecord(b)
	if err != nil {
		return
	}
	var re []byte
	switch rec.kind {
	case recPut:
		re = appendPut(nil, rec.batch, rec.ref, rec.env)
	case recDone:
		re = appendDone(nil, rec.batch, rec.id, rec.outcome, rec.reason)
	default:
		t.Fatalf("decodeRecord accepted kind %d", rec.kind)
	}
	if len(re) > len(b) || (len(re) == len(b) && !bytes.Equal(re, b)) {
		t.Fatalf("record %x decoded as %+v re-encodes as %x", b, rec, re)
	}
	rec2, err := decodeRecord(re)
	if err != nil {
		t.Fatalf("re-encoded record %x: %v", re, err)
	}
	if rec2.kind != rec.kind || rec2.batch != rec.batch || rec2.ref != rec.ref || !bytes.Equal(rec2.env, rec.env) ||
		rec2.id != rec.id || rec2.outcome != rec.outcome || rec2.reason != rec.reason {
		t.Fatalf("re-encoded record decodes differently:\n got %+v\nwant %+v", rec2, rec)
	}
}

// replayFixture is a small spool, made once per process: its log segment
// (the fuzz seed) and its body files, copied under each input's spool.
var (
	replayOnce   sync.Once
	replaySeg    []byte
	replaySegNm  string
	replayBodies map[string][]byte
	replayErr    error
)

func makeReplayFixture(t testing.TB) {
	replayOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cuemta-replay-fixture")
		if err != nil {
			replayErr = err
			return
		}
		defer os.RemoveAll(dir)
		s, err := Open(dir, testOpts(t))
		if err != nil {
			replayErr = err
			return
		}
		var ids []string
		for i := 0; i < 4; i++ {
			// Fixed IDs and times: fuzz worker processes build the fixture
			// again and must get the coordinator's bytes.
			e := testEnv(i)
			e.ID, e.Received = fmt.Sprintf("fuzz%d", i), time.Unix(1_700_000_000+int64(i), 0).UTC()
			id, err := s.Enqueue(ctx, e, testBody(i, 100+i))
			if err != nil {
				replayErr = err
				return
			}
			ids = append(ids, id)
		}
		replayErr = errors.Join(
			s.RecordAttempt(ids[1], []RecipientResult{{Addr: "rcpt1@example.com", Status: RcptPending, Reply: "451 4.7.1 later"}}, time.Unix(2e9, 0)),
			s.Complete(ids[2], OutcomeDelivered, "250 ok"),
			s.Close())
		if replayErr != nil {
			return
		}
		segs, _, err := listSegments(filepath.Join(dir, "wal"))
		if err != nil || len(segs) != 1 {
			replayErr = errors.Join(err, errors.New("want one log segment"))
			return
		}
		replaySegNm = filepath.Base(segs[0].path)
		if replaySeg, replayErr = os.ReadFile(segs[0].path); replayErr != nil {
			return
		}
		replayBodies = map[string][]byte{}
		des, err := os.ReadDir(filepath.Join(dir, "body"))
		if err != nil {
			replayErr = err
			return
		}
		for _, de := range des {
			b, err := os.ReadFile(filepath.Join(dir, "body", de.Name()))
			if err != nil {
				replayErr = err
				return
			}
			replayBodies[de.Name()] = b
		}
	})
	if replayErr != nil {
		t.Fatalf("replay fixture: %v", replayErr)
	}
}

// FuzzReplay writes arbitrary bytes as the tail (only) log segment of a
// spool, with its body files intact or with one byte flipped (bodyFlip),
// and opens it. Invariants: Open does
// not panic; it either opens (and the spool then closes cleanly, and opens
// again with the same live messages) or fails with an error wrapping
// ErrCorrupt or ErrStorage.
func FuzzReplay(f *testing.F) {
	makeReplayFixture(f)
	f.Add(bytes.Clone(replaySeg), false, uint16(0))
	f.Add(replaySeg[:len(replaySeg)-3], false, uint16(0))
	f.Add(replaySeg[:len(replaySeg)/2], false, uint16(0))
	f.Add(append(bytes.Clone(replaySeg), replaySeg[:20]...), false, uint16(0))
	f.Add([]byte{0x05, 1, 2, 3}, true, uint16(0))
	f.Add([]byte(nil), false, uint16(0))
	f.Add(binary.AppendUvarint(nil, 1<<40), false, uint16(0))
	f.Fuzz(func(t *testing.T, seg []byte, replace bool, bodyFlip uint16) {
		makeReplayFixture(t)
		if replace {
			// A seed-derived input: the real segment with the fuzzed bytes
			// written over its start, so mutations land on real records.
			seg = append(bytes.Clone(seg), replaySeg[min(len(seg), len(replaySeg)):]...)
		}
		dir := t.TempDir()
		for _, sub := range []string{"wal", "body"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
				t.Fatal(err)
			}
		}
		for name, b := range replayBodies {
			if bodyFlip != 0 && len(b) > 0 {
				// Damage one byte of the body files too (bit rot).
				b = bytes.Clone(b)
				b[int(bodyFlip-1)%len(b)] ^= 0x20
			}
			if err := os.WriteFile(filepath.Join(dir, "body", name), b, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "wal", replaySegNm), seg, 0o640); err != nil {
			t.Fatal(err)
		}
		s, err := openWithin(t, dir, seg)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrStorage) {
				t.Fatalf("Open failed with %v, which wraps neither ErrCorrupt nor ErrStorage", err)
			}
			return
		}
		before := liveEnvelopes(s)
		if err := closeWithin(t, s); err != nil {
			t.Fatalf("Close after a successful Open: %v", err)
		}
		s, err = openWithin(t, dir, seg)
		if err != nil {
			t.Fatalf("second Open of a spool that opened: %v", err)
		}
		defer s.Close()
		after := liveEnvelopes(s)
		if len(after) != len(before) {
			t.Fatalf("live messages changed across reopen: %d, then %d", len(before), len(after))
		}
		for id, e := range before {
			if !envEqual(e, after[id]) {
				t.Fatalf("envelope %s changed across reopen:\n%+v\n%+v", id, e, after[id])
			}
		}
	})
}

func liveEnvelopes(s *Spool) map[string]Envelope {
	out := map[string]Envelope{}
	s.Each(func(e Envelope) bool {
		out[e.ID] = e
		return true
	})
	return out
}

// openWithin is Open that fails the input instead of hanging the fuzz
// worker (a hung worker shows only as "0/sec").
func openWithin(t *testing.T, dir string, seg []byte) (*Spool, error) {
	t.Helper()
	type res struct {
		s   *Spool
		err error
	}
	c := make(chan res, 1)
	go func() {
		s, err := Open(dir, replayOpts(t))
		c <- res{s, err}
	}()
	select {
	case r := <-c:
		return r.s, r.err
	case <-time.After(5 * time.Second):
		t.Fatalf("Open did not return within 5s for a %d-byte tail segment %q", len(seg), seg)
		return nil, nil
	}
}

func closeWithin(t *testing.T, s *Spool) error {
	t.Helper()
	c := make(chan error, 1)
	go func() { c <- s.Close() }()
	select {
	case err := <-c:
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("Close did not return within 5s")
		return nil
	}
}

// replayOpts are testOpts without directory and body fsyncs: durability
// is not under test here, and fsyncs would make each input take
// milliseconds.
func replayOpts(t testing.TB) Options {
	o := testOpts(t)
	o.hooks = &hooks{
		dirSync:  func(string) error { return nil },
		bodySync: func(*os.File) error { return nil },
	}
	return o
}
