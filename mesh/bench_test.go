package mesh

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkDirectory measures the room directory of a 3-voter cluster over
// loopback, with and without an emulated inter-region round trip on every
// raft and forwarding link. One op is a Join (the join decision, timed for
// the p50/p99) followed by a Leave of the same room; the calls are spread
// over the three nodes, so two thirds are forwarded to the leader. callers
// is the number of concurrent callers (1: the unloaded latency).
//
//	go test -run '^$' -bench Directory -benchtime 2000x ./mesh
func BenchmarkDirectory(b *testing.B) {
	for _, bc := range []struct {
		rtt     time.Duration
		callers int
	}{{0, 1}, {0, 32}, {100 * time.Millisecond, 1}, {100 * time.Millisecond, 32}} {
		rtt := bc.rtt
		b.Run(fmt.Sprintf("rtt=%v/callers=%d", rtt, bc.callers), func(b *testing.B) {
			tc := newTestCluster(b, 3, func(c *Config) {
				// Raft timeouts sized for the round trip, as docs/cluster.md advises.
				c.RaftTimeout = max(time.Second, 10*rtt)
				c.ApplyTimeout = 30 * time.Second
			})
			names := tc.names()
			tc.formed(names...)
			tc.net.mu.Lock()
			tc.net.delay = rtt / 2
			tc.net.mu.Unlock()
			ctx := context.Background()
			// Warm the forwarding connections and each node's first-join clean-up.
			for _, n := range names {
				k := NewRoomKey([]byte("bench"), "warm"+n)
				if _, _, err := tc.node(n).Join(ctx, k, n); err != nil {
					b.Fatal(err)
				}
				tc.node(n).Leave(ctx, k, n)
			}
			var (
				mu    sync.Mutex
				lat   []time.Duration
				seq   atomic.Int64
				fails atomic.Int64
			)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range bc.callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for {
						i := seq.Add(1)
						if i > int64(b.N) {
							break
						}
						name := names[int(i)%len(names)]
						n := tc.node(name)
						key := NewRoomKey([]byte("bench"), fmt.Sprint("room-", i, rand.Int()))
						t0 := time.Now()
						if _, _, err := n.Join(ctx, key, name); err != nil {
							fails.Add(1)
							continue
						}
						mine = append(mine, time.Since(t0))
						if err := n.Leave(ctx, key, name); err != nil {
							fails.Add(1)
						}
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if fails.Load() > 0 {
				b.Fatalf("%d directory calls failed", fails.Load())
			}
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(float64(2*len(lat))/elapsed.Seconds(), "dirops/s")
			b.ReportMetric(q(0.50), "join-p50-ms")
			b.ReportMetric(q(0.99), "join-p99-ms")
		})
	}
}
