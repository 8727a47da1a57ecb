package reception

import (
	"errors"
	"strings"
	"testing"
)

func TestBudgetReserveRelease(t *testing.T) {
	b := NewBudget(100)
	steps := []struct {
		op   string // reserve, release, force, fits, limit
		n    int64
		ok   bool  // reserve and fits: the expected answer
		want int64 // InFlight after the step
	}{
		{"reserve", 60, true, 60},
		{"fits", 40, true, 60},
		{"fits", 41, false, 60},
		{"reserve", 41, false, 60}, // refused: takes nothing
		{"reserve", 40, true, 100},
		{"reserve", 1, false, 100},
		{"release", 60, false, 40},
		{"force", 70, false, 110}, // committed memory, over the limit
		{"reserve", 1, false, 110},
		{"release", 110, false, 0},
		{"limit", 10, false, 0}, // a reload lowers the bound
		{"reserve", 11, false, 0},
		{"reserve", 10, true, 10},
		{"limit", 0, false, 10}, // 0: the default
		{"fits", DefaultMaxBytesInFlight - 10, true, 10},
		{"release", 10, false, 0},
	}
	for i, s := range steps {
		var ok bool
		switch s.op {
		case "reserve":
			ok = b.reserve(s.n)
		case "fits":
			ok = b.fits(s.n)
		case "release":
			b.release(s.n)
		case "force":
			b.force(s.n)
		case "limit":
			b.SetLimit(s.n)
		}
		if (s.op == "reserve" || s.op == "fits") && ok != s.ok {
			t.Errorf("step %d: %s(%d) = %v, want %v", i, s.op, s.n, ok, s.ok)
		}
		if got := b.InFlight(); got != s.want {
			t.Fatalf("step %d: %s(%d): InFlight = %d, want %d", i, s.op, s.n, got, s.want)
		}
	}
}

// TestMessageBufferReservesAsBytesArrive: a message buffer never holds
// more than it was given plus one chunk, gives everything back on
// release, and refuses (holding nothing) past the budget.
func TestMessageBufferReservesAsBytesArrive(t *testing.T) {
	for _, tt := range []struct {
		name    string
		limit   int64
		size    int
		wantErr error
	}{
		{"empty", 4 * chunkSize, 0, nil},
		{"one byte", 4 * chunkSize, 1, nil},
		{"exactly a chunk", 4 * chunkSize, chunkSize, nil},
		{"three chunks and a bit", 4 * chunkSize, 3*chunkSize + 7, nil},
		{"over budget", 4 * chunkSize, 4*chunkSize + 1, errOverBudget},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.limit)
			m := newMessageBuffer(b)
			data := strings.Repeat("0123456789abcdef", tt.size/16+1)[:tt.size]
			err := m.readFrom(strings.NewReader(data))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("readFrom: %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if b.InFlight() != 0 {
					t.Fatalf("refused buffer still holds %d bytes", b.InFlight())
				}
				return
			}
			if held := b.InFlight(); held < int64(tt.size) || held > int64(tt.size)+chunkSize {
				t.Errorf("holds %d bytes for %d of data, want at most one chunk more", held, tt.size)
			}
			out := m.assemble(3, 2)
			if got := string(out[3 : 3+m.len()]); got != data {
				t.Errorf("assembled data differs (%d bytes, want %d)", len(got), len(data))
			}
			if held := b.InFlight(); held != int64(len(out)) {
				t.Errorf("after assemble holds %d bytes, want the buffer's %d", held, len(out))
			}
			m.release()
			m.release() // idempotent
			if b.InFlight() != 0 {
				t.Fatalf("after release holds %d bytes", b.InFlight())
			}
		})
	}
}
