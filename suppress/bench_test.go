package suppress

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// The index at 1M entries against a plain map[string]struct{} of the same
// keys, built in the same run: lookup time (a mix of hits and misses) and
// heap bytes per entry (reported as B/entry).
const benchEntries = 1_000_000

func benchAddr(i int) string { return fmt.Sprintf("user%07d@example%d.com", i, i%1000) }

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func BenchmarkIndex1M(b *testing.B) {
	addrs := make([]string, benchEntries)
	for i := range addrs {
		addrs[i] = benchAddr(i)
	}
	before := heapNow()
	x := newIndex()
	added := time.Unix(1_800_000_000, 0)
	for i, a := range addrs {
		// Reasons as bounces write them: a category and a code, shared.
		x.put(&Entry{Address: a, Source: SourceBounce, Added: added, Reason: []string{"bad-mailbox: 550 5.1.1", "bad-domain: 550 5.1.2", "inactive-mailbox: 550 5.2.1"}[i%3]})
	}
	perEntry := float64(heapNow()-before) / benchEntries
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Half hits, half misses (a tenant with no entries).
		tenant := ""
		if i&1 == 1 {
			tenant = "t"
		}
		x.lookup(tenant, addrs[i%benchEntries], now)
	}
	b.StopTimer()
	b.ReportMetric(perEntry, "B/entry")
	runtime.KeepAlive(x)
}

func BenchmarkMapBaseline1M(b *testing.B) {
	addrs := make([]string, benchEntries)
	for i := range addrs {
		addrs[i] = benchAddr(i)
	}
	before := heapNow()
	m := make(map[string]struct{})
	for _, a := range addrs {
		// The key's bytes are the map's own, as an index must own them.
		m["\x00"+a] = struct{}{}
	}
	perEntry := float64(heapNow()-before) / benchEntries
	b.ReportAllocs()
	b.ResetTimer()
	var hits int
	for i := range b.N {
		key := "\x00" + addrs[i%benchEntries]
		if i&1 == 1 {
			key = "t" + key
		}
		if _, ok := m[key]; ok {
			hits++
		}
	}
	b.StopTimer()
	b.ReportMetric(perEntry, "B/entry")
	runtime.KeepAlive(m)
}

// BenchmarkStoreLookup1M is the path reception takes: Store.Suppressed,
// with its lock, normalisation check and the global fallback.
func BenchmarkStoreLookup1M(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	addrs := make([]string, benchEntries)
	entries := make([]Entry, 0, 10_000)
	for i := range benchEntries {
		addrs[i] = benchAddr(i)
		entries = append(entries, Entry{Address: addrs[i], Source: SourceImport})
		if len(entries) == cap(entries) {
			if err := s.Add(entries...); err != nil {
				b.Fatal(err)
			}
			entries = entries[:0]
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		s.Suppressed("acme", addrs[i%benchEntries])
	}
}
