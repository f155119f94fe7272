package relay

import (
	"encoding/binary"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// Benchmarks of one relay hop on loopback, each against what it costs to
// move the same packets over plain UDP in the same run. Commands and
// results: docs/relay.md, "Benchmarks".

// rawSocket makes the relay use the plain *net.UDPConn (quic-go's batched
// and GSO paths), not the test's gate wrapper.
func rawSocket(n **node) nodeOpt {
	return func(c *Config) {
		c.PacketConn = c.PacketConn.(*gateConn).PacketConn
		c.LinkTimeout = 10 * time.Second
	}
}

// countSink counts packets and records the one-way delay written in the
// payload's first 8 bytes (nanoseconds since base).
type countSink struct {
	n      atomic.Int64
	waiter counter
	base   time.Time
	record atomic.Bool
	delays []time.Duration // appended by the single writer goroutine
}

func (s *countSink) WriteRTP(_ int, pkt []byte) {
	if s.record.Load() && len(pkt) >= 20 {
		sent := time.Duration(binary.BigEndian.Uint64(pkt[12:]))
		s.delays = append(s.delays, time.Since(s.base)-sent)
	}
	s.waiter.add(&s.n)
}

// counter wakes a waiter when a count reaches its target, so that the
// sender waits without spinning (a spin would count as CPU per packet).
type counter struct {
	target atomic.Int64
	ch     chan struct{}
}

func (c *counter) add(n *atomic.Int64) {
	if v := n.Add(1); v == c.target.Load() {
		select {
		case c.ch <- struct{}{}:
		default:
		}
	}
}

// waitFor blocks until n reaches target (or a second passes: a loss).
func (c *counter) wait(n *atomic.Int64, target int64) {
	c.target.Store(target)
	if n.Load() >= target {
		return
	}
	select {
	case <-c.ch:
	case <-time.After(time.Second):
	}
}

// hopBench is a link a->b with one exported audio track subscribed by one
// sink on b; packets are injected where a's bridge hands them to the relay
// (the export's WriteRTP).
type hopBench struct {
	a, b *node
	e    *exportTrack
	sink *countSink
	pkt  []byte
}

func newHopBench(b *testing.B, size int) *hopBench {
	ca := newTestCA(b)
	h := &hopBench{}
	h.a = startNode(b, ca, "a", rawSocket(nil))
	h.b = startNode(b, ca, "b", rawSocket(nil))
	ra := h.a.attach(b, "conf", h.b)
	rb := h.b.attach(b, "conf", h.a)
	o := publishAudio(b, h.a, "conf", ra, "mic")
	waitFor(b, "import", func() bool { return hasTrack(rb, "mic") })
	h.sink = &countSink{base: time.Now(), waiter: counter{ch: make(chan struct{}, 1)}}
	if _, err := rb.Subscribe("mic", 0, h.sink); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "flowing", func() bool { o.write(); return h.sink.n.Load() > 0 })
	time.Sleep(100 * time.Millisecond) // the last of those arrive before the count restarts
	l := linkTo(h.a, "b")
	l.mu.Lock()
	for _, e := range l.exports {
		h.e = e
	}
	l.mu.Unlock()
	hdr := rtp.Header{Version: 2, PayloadType: 111, SSRC: o.ssrc}
	h.pkt = make([]byte, size)
	hdr.MarshalTo(h.pkt)
	h.sink.n.Store(0)
	return h
}

func (h *hopBench) send(seq uint16) {
	binary.BigEndian.PutUint16(h.pkt[2:], seq)
	binary.BigEndian.PutUint32(h.pkt[4:], uint32(seq)*960)
	binary.BigEndian.PutUint64(h.pkt[12:], uint64(time.Since(h.sink.base)))
	h.e.WriteRTP(0, h.pkt)
}

// batch is the number of packets sent before waiting for them: a window
// that keeps the bridge's subscriber queue from overflowing.
const batch = 32

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHopCPU: process CPU per packet for one hop, both ends (a's
// relay and QUIC, b's QUIC and relay, and b's bridge taking the packet in
// and handing it to one subscriber), against a UDP send plus receive of
// the same packet size. cpu-ns/pkt is the figure; ratio is relay/udp.
func BenchmarkHopCPU(b *testing.B) {
	const size = 1000
	b.Run("relay", func(b *testing.B) {
		h := newHopBench(b, size)
		b.SetBytes(size)
		b.ReportAllocs()
		start := cpuTime()
		b.ResetTimer()
		var i int64
		for b.Loop() {
			i++
			h.send(uint16(i))
			if i%batch == 0 {
				h.sink.waiter.wait(&h.sink.n, i)
			}
		}
		h.sink.waiter.wait(&h.sink.n, i)
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-start)/float64(i), "cpu-ns/pkt")
		b.ReportMetric(float64(h.sink.n.Load())/float64(i), "delivered")
	})
	b.Run("udp", func(b *testing.B) {
		a, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		r, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		var got atomic.Int64
		w := counter{ch: make(chan struct{}, 1)}
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := r.ReadFrom(buf); err != nil {
					return
				}
				w.add(&got)
			}
		}()
		pkt := make([]byte, size)
		to := r.LocalAddr()
		b.SetBytes(size)
		b.ReportAllocs()
		start := cpuTime()
		b.ResetTimer()
		var i int64
		for b.Loop() {
			i++
			a.WriteTo(pkt, to)
			if i%batch == 0 {
				w.wait(&got, i)
			}
		}
		w.wait(&got, i)
		b.StopTimer()
		b.ReportMetric(float64(got.Load())/float64(i), "delivered")
		b.ReportMetric(float64(cpuTime()-start)/float64(i), "cpu-ns/pkt")
	})
}

// BenchmarkHopLatency: one-way delay added by one hop on loopback, from
// the export's WriteRTP on a to b's subscriber, at 5,000 packets/s; the
// udp case is a plain socket pair with one reader goroutine, the floor the
// machine's scheduling gives.
func BenchmarkHopLatency(b *testing.B) {
	b.Run("relay", benchHopLatency)
	b.Run("udp", func(b *testing.B) {
		a, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		r, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		base := time.Now()
		var delays []time.Duration
		var got atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 1500)
			for {
				n, _, err := r.ReadFrom(buf)
				if err != nil {
					return
				}
				if n >= 8 {
					delays = append(delays, time.Since(base)-time.Duration(binary.BigEndian.Uint64(buf)))
				}
				got.Add(1)
			}
		}()
		pkt := make([]byte, 200)
		next := time.Now()
		var i int64
		for b.Loop() {
			i++
			binary.BigEndian.PutUint64(pkt, uint64(time.Since(base)))
			a.WriteTo(pkt, r.LocalAddr())
			next = next.Add(200 * time.Microsecond)
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
		}
		deadline := time.Now().Add(2 * time.Second)
		for got.Load() < i && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		r.Close()
		<-done
		reportPercentiles(b, delays)
	})
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		b.Fatal("no samples")
	}
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Microseconds()), "p99-µs")
}

func benchHopLatency(b *testing.B) {
	h := newHopBench(b, 200)
	h.sink.record.Store(true)
	b.ResetTimer()
	var i int64
	next := time.Now()
	for b.Loop() {
		i++
		h.send(uint16(i))
		next = next.Add(200 * time.Microsecond)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for h.sink.n.Load() < i && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	h.sink.record.Store(false)
	reportPercentiles(b, slices.Clone(h.sink.delays))
}

// BenchmarkRate20k: 20,000 packets/s of 1000 bytes on one link for one
// second per iteration. lost/op counts packets that did not reach b's
// subscriber; drops/op datagrams dropped and counted by either relay (by
// reason in the log); quic-queue/op datagrams whose QUIC packets arrived
// but that quic-go discarded before b's relay could take them (its receive
// queue is 128 deep and counts nothing: sent - received - QUIC packets
// lost); pkt/s the send rate the sender achieved.
func BenchmarkRate20k(b *testing.B) {
	h := newHopBench(b, 1000)
	var sent, lost int64
	var seq uint16
	la, lb := linkTo(h.a, "b"), linkTo(h.b, "a")
	sa0, sb0, qa0 := h.a.relay.Stats(), h.b.relay.Stats(), la.conn.ConnectionStats()
	var sending time.Duration
	b.ResetTimer()
	for b.Loop() {
		before := h.sink.n.Load()
		start := time.Now()
		for k := range 20000 {
			// 20 packets per millisecond, as a busy link carries them.
			if k%20 == 0 {
				for time.Since(start) < time.Duration(k/20)*time.Millisecond {
					time.Sleep(100 * time.Microsecond)
				}
			}
			seq++
			h.send(seq)
		}
		sending += time.Since(start)
		sent += 20000
		deadline := time.Now().Add(2 * time.Second)
		for h.sink.n.Load()-before < 20000 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		lost += 20000 - (h.sink.n.Load() - before)
	}
	b.StopTimer()
	sa, sb, qa := h.a.relay.Stats(), h.b.relay.Stats(), la.conn.ConnectionStats()
	var drops uint64
	for _, st := range [][2]Stats{{sa0, sa}, {sb0, sb}} {
		for r, v := range st[1].Drops {
			if d := v - st[0].Drops[r]; d > 0 {
				drops += d
				b.ReportMetric(float64(d)/float64(b.N), r+"/op")
			}
		}
	}
	out, in := sa.DatagramsOut-sa0.DatagramsOut, sb.DatagramsIn-sb0.DatagramsIn
	quicLost := qa.PacketsLost - qa0.PacketsLost
	b.Logf("a: datagrams out %d, drops %v; b: datagrams in %d, drops %v", out, sa.Drops, in, sb.Drops)
	b.Logf("quic a->b: packets sent %d, lost %d; b received %d", qa.PacketsSent-qa0.PacketsSent, quicLost, lb.conn.ConnectionStats().PacketsReceived)
	b.Logf("bridge b: %+v", h.b.br.Stats())
	b.ReportMetric(float64(lost)/float64(b.N), "lost/op")
	b.ReportMetric(float64(drops)/float64(b.N), "drops/op")
	b.ReportMetric(float64(int64(out)-int64(in)-int64(quicLost))/float64(b.N), "quic-queue/op")
	b.ReportMetric(float64(sent)/sending.Seconds(), "pkt/s")
}
