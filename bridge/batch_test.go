package bridge

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// rtpDatagram builds an RTP-looking datagram of stream ssrc with sequence
// number seq.
func rtpDatagram(ssrc uint32, seq uint16, size int) []byte {
	p := make([]byte, size)
	p[0], p[1] = 0x80, 111
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[8:], ssrc)
	return p
}

// TestEgressBatchOrderAndBound sends streams through a private egress over
// real loopback sockets, from concurrent writers in rounds, and checks by
// construction what batching promises: no more than maxPending full
// batches and one filling wait, none once the rounds have ended, nothing is
// batched outside a round, every datagram is sent or counted as dropped,
// and the packets of each stream arrive in order. An IPv4 socket and a dual-stack IPv6 socket (IPv4 as v4-mapped)
// are both covered.
func TestEgressBatchOrderAndBound(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sendmmsg batching is Linux only")
	}
	for _, tc := range []struct{ name, network, laddr string }{
		{"ipv4", "udp4", "127.0.0.1:0"},
		{"dual-stack", "udp", "[::]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snd, err := net.ListenPacket(tc.network, tc.laddr)
			if err != nil {
				t.Skip(err)
			}
			defer snd.Close()
			rcv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer rcv.Close()
			_ = rcv.SetReadBuffer(8 << 20)
			var st counters
			s := newEgressSock(snd, &st)
			if s == nil {
				t.Fatal("no egress socket for a UDP socket")
			}
			to := rcv.LocalAddr().(*net.UDPAddr).AddrPort()
			to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())

			const writers, streams, perStream = 2, 3, 600
			total := writers * streams * perStream
			got := map[uint32][]uint16{}
			recvDone := make(chan struct{})
			go func() {
				defer close(recvDone)
				buf := make([]byte, 2048)
				_ = rcv.SetReadDeadline(time.Now().Add(30 * time.Second))
				for n := 0; n < total; n++ {
					k, err := rcv.Read(buf)
					if err != nil {
						return
					}
					if k < 12 {
						continue
					}
					ssrc := binary.BigEndian.Uint32(buf[8:])
					got[ssrc] = append(got[ssrc], binary.BigEndian.Uint16(buf[2:]))
				}
			}()

			var e egress
			if e.offer(s, rtpDatagram(1, 0, 100), to) {
				t.Fatal("batched outside a round")
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var fails []string
			fail := func(f string) {
				mu.Lock()
				fails = append(fails, f)
				mu.Unlock()
			}
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					seq := 0
					for seq < perStream {
						// One round: a burst of each stream, as a
						// writer serves its ready list.
						e.begin()
						burst := 1 + seq%37
						for i := 0; i < burst && seq < perStream; i++ {
							for k := range streams {
								ssrc := uint32(100*w + k)
								if !e.offer(s, rtpDatagram(ssrc, uint16(seq), 100+900*(k%2)), to) {
									fail("offer refused within a round")
								}
								if now, _ := e.held(); now > maxBatch*(maxPending+1) {
									fail("more than maxPending full batches and one filling wait to be sent")
								}
							}
							seq++
						}
						e.end()
						// Time between rounds: nothing of this writer may
						// still be held, the other's may.
						runtime.Gosched()
					}
				}()
			}
			wg.Wait()
			// Everything is sent or dropped by now: the receiver stops
			// once the sent datagrams are in.
			_ = rcv.SetReadDeadline(time.Now().Add(3 * time.Second))
			if now, most := e.held(); now != 0 || most > maxBatch*(maxPending+1) || most < 2 {
				t.Errorf("held %d after the last round, at most %d (want 0, 2..%d)", now, most, maxBatch*(maxPending+1))
			}
			<-recvDone
			for _, f := range fails {
				t.Error(f)
			}
			if st.dropWriteError.Load() != 0 {
				t.Errorf("%d write errors", st.dropWriteError.Load())
			}
			e.mu.Lock()
			batches, datagrams := e.batches, e.datagrams
			e.mu.Unlock()
			// The writers here write as fast as they can, faster than the
			// kernel sends: beyond maxPending waiting batches a datagram is
			// dropped and counted, never held (no writer waits on a send).
			dropped := st.dropQueueFull.Load()
			if datagrams+dropped != uint64(total) || batches >= datagrams || datagrams == 0 {
				t.Errorf("%d datagrams in %d batches and %d dropped, want %d in all, in fewer batches", datagrams, batches, dropped, total)
			}
			t.Logf("%d datagrams in %d batches, %d dropped", datagrams, batches, dropped)
			received := 0
			for w := range writers {
				for k := range streams {
					ssrc := uint32(100*w + k)
					seqs := got[ssrc]
					received += len(seqs)
					for i := 1; i < len(seqs); i++ {
						if seqs[i] <= seqs[i-1] {
							t.Errorf("stream %d: sequence number %d after %d: reordered", ssrc, seqs[i], seqs[i-1])
							break
						}
					}
				}
			}
			if uint64(received) != datagrams {
				t.Errorf("%d datagrams received, %d sent", received, datagrams)
			}
		})
	}
}

// TestEgressEndSendsEverything: each round's end leaves nothing held, for
// any number of datagrams in it (below, at and above maxBatch).
func TestEgressEndSendsEverything(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sendmmsg batching is Linux only")
	}
	snd, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	rcv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	_ = rcv.SetReadBuffer(4 << 20)
	var st counters
	s := newEgressSock(snd, &st)
	to := rcv.LocalAddr().(*net.UDPAddr).AddrPort()
	var e egress
	buf := make([]byte, 2048)
	seq := uint16(0)
	for _, n := range []int{1, maxBatch - 1, maxBatch, maxBatch + 1, 3*maxBatch + 5} {
		e.begin()
		for i := 0; i < n; i++ {
			if !e.offer(s, rtpDatagram(7, seq+uint16(i), 200), to) {
				t.Fatal("offer refused within a round")
			}
		}
		if now, _ := e.held(); now != n%maxBatch {
			t.Errorf("%d written: %d held before the end, want %d (a full batch leaves at once)", n, now, n%maxBatch)
		}
		e.end()
		if now, _ := e.held(); now != 0 {
			t.Errorf("%d written: %d still held after the round", n, now)
		}
		_ = rcv.SetReadDeadline(time.Now().Add(20 * time.Second))
		for i := 0; i < n; i++ {
			k, err := rcv.Read(buf)
			if err != nil {
				t.Fatalf("%d written: %d received: %v", n, i, err)
			}
			if q := binary.BigEndian.Uint16(buf[2:]); k != 200 || q != seq+uint16(i) {
				t.Fatalf("%d written: datagram %d is seq %d (%d bytes)", n, i, q, k)
			}
		}
		seq += uint16(n)
	}
}

// TestIsRTP: RTP is batched; RTCP, STUN and DTLS are not.
func TestIsRTP(t *testing.T) {
	rtcp := rtpDatagram(1, 1, 40)
	rtcp[1] = 200 // sender report
	stun := make([]byte, 20)
	dtls := make([]byte, 20)
	dtls[0] = 22
	for _, c := range []struct {
		p    []byte
		want bool
	}{{rtpDatagram(1, 1, 40), true}, {rtcp, false}, {stun, false}, {dtls, false}, {[]byte{0x80}, false}} {
		if got := isRTP(c.p); got != c.want {
			t.Errorf("isRTP(% x…) = %v", c.p[:min(len(c.p), 2)], got)
		}
	}
}

// TestGroupWriteNoAlloc: the writer-group path (enqueue, schedule into the
// group's ready list, the writer's turn, serve) and a batched send through
// a real socket allocate nothing per packet.
func TestGroupWriteNoAlloc(t *testing.T) {
	u := testUpTrack(webrtc.RTPCodecTypeAudio, 1)
	var ws [3]countingWriter
	g := &wgroup{wake: make(chan struct{}, 1)} // no writer goroutine: the test takes its turns
	for i := range ws {
		testDownTrack(u, &ws[i]).grp.Store(g)
	}
	pb := &packetBuilder{buf: make([]byte, 1500)}
	pb.build(1, 0, audioPayload(7), true)
	pkt := append([]byte(nil), pb.buf[:pb.pkt.MarshalSize()]...)
	var hdr rtp.Header
	seq := uint16(1)
	var turn []*DownTrack
	forward := func() {
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*960)
		seq++
		u.handlePacket(0, pkt, &hdr)
		g.mu.Lock()
		turn, g.ready = g.ready, turn[:0]
		g.mu.Unlock()
		for i, dt := range turn {
			dt.serve(&g.buf)
			turn[i] = nil
		}
	}
	forward()
	if allocs := testing.AllocsPerRun(1000, forward); allocs != 0 {
		t.Fatalf("%.1f allocations per forwarded packet, want 0", allocs)
	}
	for i, w := range ws {
		if w.packets != 1002 {
			t.Errorf("writer %d: %d packets written, want 1002", i, w.packets)
		}
	}

	if runtime.GOOS != "linux" {
		return
	}
	snd, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	rcv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	_ = rcv.SetReadBuffer(8 << 20)
	var st counters
	s := newEgressSock(snd, &st)
	to := rcv.LocalAddr().(*net.UDPAddr).AddrPort()
	var e egress
	p := rtpDatagram(9, 1, 1000)
	send := func() {
		e.begin()
		for range 10 {
			e.offer(s, p, to)
		}
		e.end()
	}
	send()
	buf := make([]byte, 2048)
	drain := func() {
		_ = rcv.SetReadDeadline(time.Now().Add(20 * time.Second))
		for range 10 {
			if _, err := rcv.Read(buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	drain()
	if allocs := testing.AllocsPerRun(100, func() { send(); drain() }); allocs != 0 {
		t.Fatalf("%.1f allocations per batched round of 10 (and its reception), want 0", allocs)
	}
}

// videoSeqs returns the sequence numbers c received on its (one) video
// track, in arrival order.
func videoSeqs(c *client) []uint16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rt := range c.tracks {
		if rt.kind == webrtc.RTPCodecTypeVideo {
			rt.mu.Lock()
			s := append([]uint16(nil), rt.seqs...)
			rt.mu.Unlock()
			return s
		}
	}
	return nil
}

// TestBatchedEgressThroughPion: a real bridge's forwarded media to pion
// subscribers goes through the batch (sendmmsg carries it, more than one
// datagram per call on average), and each subscriber receives the
// publisher's packets complete and in order.
func TestBatchedEgressThroughPion(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sendmmsg batching is Linux only")
	}
	br := startBridge(t)
	defer br.Close()
	r := br.NewRoom("batch", RoomEvents{})
	api := clientAPI(t)
	pub := newClient(t, api, r, "pub")
	pub.manual = true
	defer pub.close()
	var subs []*client
	for i := range 4 {
		c := newClient(t, api, r, fmt.Sprintf("sub%d", i))
		defer c.close()
		subs = append(subs, c)
	}
	pub.publish(nil)
	seq := uint16(0)
	send := func(key bool) {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: true}, Payload: vp8Payload(2, uint32(seq), key)}
		seq++
		if err := pub.video[0].WriteRTP(&pkt); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "every subscriber receives video", func() bool {
		send(true)
		time.Sleep(20 * time.Millisecond)
		for _, c := range subs {
			if len(videoSeqs(c)) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(200 * time.Millisecond) // the last keyframes arrive
	start := make([]int, len(subs))
	for i, c := range subs {
		start[i] = len(videoSeqs(c))
	}
	out.mu.Lock()
	d0, b0 := out.datagrams, out.batches
	out.mu.Unlock()

	const n = 400
	for i := range n {
		send(false)
		if i%32 == 31 || i == n-1 {
			// Stay below the bridge's queue: wait for the slowest.
			want := i + 1
			eventually(t, 30*time.Second, "subscribers keep up", func() bool {
				for j, c := range subs {
					if len(videoSeqs(c))-start[j] < want {
						return false
					}
				}
				return true
			})
		}
	}
	for j, c := range subs {
		got := videoSeqs(c)[start[j]:]
		if len(got) != n {
			t.Errorf("subscriber %d: %d packets, want %d", j, len(got), n)
			continue
		}
		for i := 1; i < len(got); i++ {
			if got[i] != got[i-1]+1 {
				t.Errorf("subscriber %d: sequence number %d after %d: reordered or lost", j, got[i], got[i-1])
				break
			}
		}
	}
	out.mu.Lock()
	d, b := out.datagrams-d0, out.batches-b0
	out.mu.Unlock()
	if d < n*uint64(len(subs)) || b == 0 || b >= d {
		t.Errorf("%d datagrams in %d sendmmsg batches for %d packets to %d subscribers: want all of them, batched", d, b, n, len(subs))
	}
	t.Logf("%d datagrams in %d batches (%.1f per sendmmsg)", d, b, float64(d)/float64(max(b, 1)))
	if st := br.Stats(); st.Drops.WriteError != 0 {
		t.Errorf("write errors: %+v", st.Drops)
	}
}

// TestSenderReportsWithBatching: with the media in batches, the bridge's
// RTCP still reaches a subscriber: sender reports for the forwarded video
// whose packet count follows what was forwarded (the reports are written at
// once, the RTP they count goes through the batch).
func TestSenderReportsWithBatching(t *testing.T) {
	br := startBridge(t)
	defer br.Close()
	r := br.NewRoom("sr", RoomEvents{})
	api := clientAPI(t)
	pub := newClient(t, api, r, "pub")
	pub.manual = true
	defer pub.close()
	sub := newClient(t, api, r, "sub")
	defer sub.close()
	pub.publish(nil)
	seq := uint16(0)
	send := func() {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: true}, Payload: vp8Payload(2, uint32(seq), true)}
		seq++
		_ = pub.video[0].WriteRTP(&pkt)
	}
	var recv *webrtc.RTPReceiver
	eventually(t, 30*time.Second, "the subscriber receives video", func() bool {
		send()
		if len(videoSeqs(sub)) == 0 {
			return false
		}
		for _, tr := range sub.sub.GetTransceivers() {
			if rc := tr.Receiver(); rc != nil && rc.Track() != nil && rc.Track().Kind() == webrtc.RTPCodecTypeVideo {
				recv = rc
			}
		}
		return recv != nil
	})
	ssrc := uint32(recv.Track().SSRC())
	srs := make(chan *rtcp.SenderReport, 16)
	go func() {
		for {
			pkts, _, err := recv.ReadRTCP()
			if err != nil {
				return
			}
			for _, p := range pkts {
				if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == ssrc {
					select {
					case srs <- sr:
					default:
					}
				}
			}
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		send()
		select {
		case sr := <-srs:
			got := len(videoSeqs(sub))
			if sr.PacketCount > 0 && int(sr.PacketCount) <= got+64 {
				return
			}
			t.Logf("sender report counts %d packets, subscriber has %d", sr.PacketCount, got)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no sender report for the forwarded video within 30 s")
		}
	}
}
