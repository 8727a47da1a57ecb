package dmarcreport

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// BenchmarkRecord is what counting one verified message costs reception
// (Store.Record runs inline, after verification): a message like the
// last (its row exists), a message of a new row each time (up to
// MaxRecords), and, as the baseline, a counter alone (a mutex and a map
// increment).
func BenchmarkRecord(b *testing.B) {
	now := func() time.Time { return time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) }
	b.Run("counter-baseline", func(b *testing.B) {
		var mu sync.Mutex
		m := map[string]int64{}
		for b.Loop() {
			mu.Lock()
			m["x.test"]++
			mu.Unlock()
		}
	})
	b.Run("same-row", func(b *testing.B) {
		s, err := OpenStore(StoreOptions{Now: now})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			s.Record(okResult)
		}
	})
	b.Run("new-row", func(b *testing.B) {
		s, err := OpenStore(StoreOptions{Now: now, MaxRecords: 100000})
		if err != nil {
			b.Fatal(err)
		}
		rs := make([]Result, 4096)
		for i := range rs {
			rs[i] = with(func(r *Result) {
				r.SourceIP = netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)})
				r.EnvelopeFrom = fmt.Sprintf("b%d.x.test", i)
			})
		}
		i := 0
		for b.Loop() {
			s.Record(rs[i%len(rs)])
			i++
		}
	})
}
