package bridge

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// The forwarding benchmarks. Compare
//
//	go test -run='^$' -bench=. -count=5 ./bridge
//
// BenchmarkForward/subs=N: one op is one 1000-byte VP8 packet written by a
// pion publisher over loopback, read by the bridge, forwarded to N pion
// subscribers (SRTP AES-GCM) and read by each of them, all in this process.
// ns/fwd is the wall time per forwarded packet, cpu-ns/fwd the process CPU
// time (bridge and pion clients together, both cores) per forwarded packet,
// allocs/fwd the allocations (bridge and clients) per forwarded packet.
// BenchmarkRawUDPLoopback is the floor: one 1000-byte datagram sent and
// received over loopback per op.

const benchPayload = 1000

// forwardEnv is a bridge with one publisher and n subscribers that all
// receive the publisher's video.
type forwardEnv struct {
	b      *Bridge
	pub    *client
	subs   []*client
	counts []*atomic.Int64 // packets received, per subscriber
	wake   chan struct{}   // a subscriber received a packet
	seq    uint16          // next sequence number: SRTP drops a replayed one
}

func newForwardEnv(b testing.TB, n int) *forwardEnv {
	br := startBridge(b)
	r := br.NewRoom("bench", RoomEvents{})
	api := clientAPI(b)
	env := &forwardEnv{b: br, wake: make(chan struct{}, 1)}
	env.pub = newClient(b, api, r, "pub")
	env.pub.manual = true
	for i := 0; i < n; i++ {
		c := newClient(b, api, r, fmt.Sprintf("sub%d", i))
		c.light = true
		c.recvCount = new(atomic.Int64)
		c.recvHook = func(int64) {
			select {
			case env.wake <- struct{}{}:
			default:
			}
		}
		env.counts = append(env.counts, c.recvCount)
		env.subs = append(env.subs, c)
	}
	env.pub.publish(nil)
	// Send keyframes until every subscriber receives.
	var pkt rtp.Packet
	seq := uint16(0)
	deadline := time.Now().Add(60 * time.Second)
	for {
		received := 0
		for _, c := range env.counts {
			if c.Load() > 0 {
				received++
			}
		}
		if received == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d subscribers receive", received, n)
		}
		pkt = rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: true}, Payload: vp8Payload(2, uint32(seq), true)}
		seq++
		_ = env.pub.video[0].WriteRTP(&pkt)
		time.Sleep(20 * time.Millisecond)
	}
	env.seq = seq + 1000
	return env
}

func (env *forwardEnv) close() {
	for _, c := range env.subs {
		c.close()
	}
	env.pub.close()
	env.b.Close()
}

// minReceived returns the count of the subscriber furthest behind.
func (env *forwardEnv) minReceived() int64 {
	m := env.counts[0].Load()
	for _, c := range env.counts[1:] {
		m = min(m, c.Load())
	}
	return m
}

// run sends b.N packets, keeping at most window packets in flight to the
// slowest subscriber (below the bridge's queue length, so no drop is
// provoked), and waits until every subscriber received them.
func (env *forwardEnv) run(b *testing.B) {
	const window = 32
	n := int64(len(env.subs))
	payload := make([]byte, benchPayload)
	copy(payload, vp8Payload(2, 1, false))
	key := make([]byte, benchPayload)
	copy(key, vp8Payload(2, 1, true))
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, Marker: true}, Payload: payload}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stalls := 0
	base := env.minReceived()
	// wait blocks until every subscriber received target packets, or
	// nothing moved for 500 ms (a packet was lost: counted as a stall).
	wait := func(target int64) int64 {
		for {
			m := env.minReceived()
			if m >= target {
				return 0
			}
			timer.Reset(500 * time.Millisecond)
			select {
			case <-env.wake:
			case <-timer.C:
				if env.minReceived() == m {
					stalls++
					return target - m
				}
			}
		}
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuTime()
	skew := int64(0) // packets lost to the slowest subscriber
	b.SetBytes(benchPayload * n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		env.seq++
		pkt.SequenceNumber = env.seq
		pkt.Timestamp = uint32(env.seq) * 3000
		pkt.Payload = payload
		if i%256 == 0 {
			pkt.Payload = key // recover from any drop within 256 packets
		}
		if err := env.pub.video[0].WriteRTP(&pkt); err != nil {
			b.Fatal(err)
		}
		if sent := int64(i + 1); sent > window {
			skew += wait(base + sent - window - skew)
		}
	}
	wait(base + int64(b.N) - skew)
	b.StopTimer()
	cpu := cpuTime() - cpu0
	runtime.ReadMemStats(&ms1)
	fwd := float64(int64(b.N) * n)
	b.ReportMetric(float64(cpu.Nanoseconds())/fwd, "cpu-ns/fwd")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/fwd, "ns/fwd")
	b.ReportMetric(fwd/b.Elapsed().Seconds(), "fwd/s")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/fwd, "allocs/fwd")
	if stalls > 0 {
		b.ReportMetric(float64(stalls), "stalls")
	}
}

func BenchmarkForward(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		env := newForwardEnv(b, n)
		b.Run(fmt.Sprintf("subs=%d", n), env.run)
		b.Logf("subs=%d: bridge stats %+v", n, env.b.Stats())
		env.close()
	}
}

func BenchmarkRawUDPLoopback(b *testing.B) {
	a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	to := c.LocalAddr().(*net.UDPAddr).AddrPort()
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	buf := make([]byte, benchPayload)
	rbuf := make([]byte, 1500)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		if _, err := a.WriteToUDPAddrPort(buf, to); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadFromUDPAddrPort(rbuf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/fwd")
	b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/fwd")
}

// cpuTime is the CPU time (user and system) of this process so far. On a
// loaded machine it varies much less than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
