package queue

// Benchmarks of the raw storage primitives behind the body-placement decision
// (DESIGN.md). They use tidwall/wal and plain files directly, not the Spool.

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/wal"
)

const (
	plcEnvSize  = 300
	plcBodySize = 2048
)

// BenchmarkPlacementWrite compares one durable batch of n messages:
// inline (envelope+body in one WAL record, one fsync) against separate body
// files (body append + fsync, WAL record with a reference), sequential or
// with the two fsyncs overlapped. Reported per message.
func BenchmarkPlacementWrite(b *testing.B) {
	env := make([]byte, plcEnvSize)
	body := make([]byte, plcBodySize)
	rand.Read(body)
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("inline/batch=%d", n), func(b *testing.B) {
			l, err := wal.Open(b.TempDir(), &wal.Options{SegmentSize: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := append(append([]byte{}, env...), body...)
			var bt wal.Batch
			idx := uint64(1)
			b.SetBytes(int64(n * len(rec)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for j := 0; j < n; j++ {
					bt.Write(idx, rec)
					idx++
				}
				if err := l.WriteBatch(&bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
		})
		for _, par := range []bool{false, true} {
			name := "separate-seq"
			if par {
				name = "separate-par"
			}
			b.Run(fmt.Sprintf("%s/batch=%d", name, n), func(b *testing.B) {
				dir := b.TempDir()
				l, err := wal.Open(filepath.Join(dir, "wal"), &wal.Options{SegmentSize: 64 << 20})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				f, err := os.OpenFile(filepath.Join(dir, "body"), os.O_CREATE|os.O_RDWR, 0o640)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				var off int64
				buf := make([]byte, 0, n*plcBodySize)
				var bt wal.Batch
				idx := uint64(1)
				b.SetBytes(int64(n * (plcEnvSize + plcBodySize)))
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					buf = buf[:0]
					for j := 0; j < n; j++ {
						buf = append(buf, body...)
						bt.Write(idx, env)
						idx++
					}
					if _, err := f.WriteAt(buf, off); err != nil {
						b.Fatal(err)
					}
					off += int64(len(buf))
					if par {
						var wg sync.WaitGroup
						var serr error
						wg.Add(1)
						go func() { defer wg.Done(); serr = f.Sync() }()
						if err := l.WriteBatch(&bt); err != nil {
							b.Fatal(err)
						}
						wg.Wait()
						if serr != nil {
							b.Fatal(serr)
						}
					} else {
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
						if err := l.WriteBatch(&bt); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/msg")
			})
		}
	}
}

// BenchmarkPlacementReadOld reads the body of a random old message: through
// wal.Read (inline layout: loads the whole segment when it is not cached)
// against one pread of a body file.
func BenchmarkPlacementReadOld(b *testing.B) {
	const msgs = 40000 // ~94 MB inline: 6 segments of 16 MB
	env := make([]byte, plcEnvSize)
	body := make([]byte, plcBodySize)
	rec := append(append([]byte{}, env...), body...)
	dir := b.TempDir()
	l, err := wal.Open(filepath.Join(dir, "wal"), &wal.Options{SegmentSize: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var bt wal.Batch
	for i := 1; i <= msgs; i++ {
		bt.Write(uint64(i), rec)
		if i%1000 == 0 {
			if err := l.WriteBatch(&bt); err != nil {
				b.Fatal(err)
			}
		}
	}
	f, err := os.Create(filepath.Join(dir, "body"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < msgs; i++ {
		f.Write(body)
	}
	f.Sync()
	rng := rand.New(rand.NewSource(1))
	b.Run("inline-wal.Read", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := l.Read(uint64(1 + rng.Intn(msgs*3/4))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("separate-pread", func(b *testing.B) {
		buf := make([]byte, plcBodySize)
		for i := 0; i < b.N; i++ {
			if _, err := f.ReadAt(buf, int64(rng.Intn(msgs*3/4))*plcBodySize); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestPlacementTruncateFront times wal.TruncateFront at a segment boundary
// (rewrites that whole segment) and one index earlier (rewrites one record).
func TestPlacementTruncateFront(t *testing.T) {
	if os.Getenv("CUEMTA_PLACEMENT") == "" {
		t.Skip("set CUEMTA_PLACEMENT=1")
	}
	for _, recSize := range []int{plcEnvSize, plcEnvSize + plcBodySize} {
		dir := t.TempDir()
		l, err := wal.Open(dir, &wal.Options{SegmentSize: 16 << 20})
		if err != nil {
			t.Fatal(err)
		}
		rec := make([]byte, recSize)
		var bt wal.Batch
		n := 3 * (16 << 20) / recSize
		for i := 1; i <= n; i++ {
			bt.Write(uint64(i), rec)
			if i%1000 == 0 || i == n {
				if err := l.WriteBatch(&bt); err != nil {
					t.Fatal(err)
				}
			}
		}
		names, _ := filepath.Glob(filepath.Join(dir, "0*"))
		var starts []uint64
		for _, nm := range names {
			var s uint64
			fmt.Sscanf(filepath.Base(nm), "%d", &s)
			starts = append(starts, s)
		}
		start := time.Now()
		if err := l.TruncateFront(starts[1] - 1); err != nil {
			t.Fatal(err)
		}
		trick := time.Since(start)
		start = time.Now()
		if err := l.TruncateFront(starts[2]); err != nil {
			t.Fatal(err)
		}
		whole := time.Since(start)
		t.Logf("record %d B: TruncateFront(segment start)=%v (rewrites 16 MB), TruncateFront(start-1)=%v", recSize, whole, trick)
		l.Close()
	}
}
