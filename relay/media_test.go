package relay

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
)

// origin stands in for a browser's track on the publishing node: it is
// published in the room with Room.Publish and reported to the relay as a
// local track (Remote false), as signaling reports a participant's track.
// It records what the bridge asks of its publisher.
type origin struct {
	pub  *bridge.Publication
	id   string
	ssrc uint32

	mu        sync.Mutex
	seq       uint16
	keyframes int
	nacked    []uint16
	buf       [1500]byte
}

func (o *origin) RequestKeyframe(int) { o.mu.Lock(); o.keyframes++; o.mu.Unlock() }
func (o *origin) RequestRetransmit(_ int, seqs []uint16) {
	o.mu.Lock()
	o.nacked = append(o.nacked, seqs...)
	o.mu.Unlock()
}
func (o *origin) SetDemand(bridge.Demand) {}

// publishAudio publishes an Opus track on n's room rm and exports it.
func publishAudio(t testing.TB, n *node, conf string, rm *bridge.Room, id string) *origin {
	t.Helper()
	o := &origin{id: id, ssrc: uint32(len(id)) * 1000003}
	pub, err := rm.Publish(bridge.PublishParams{
		TrackID: id, Participant: "p-" + id, Kind: webrtc.RTPCodecTypeAudio,
		Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111},
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	o.pub = pub
	n.relay.TrackPublished(conf, bridge.TrackInfo{ID: id, Participant: "p-" + id, Kind: webrtc.RTPCodecTypeAudio})
	return o
}

// write sends one packet whose payload is derived from its sequence
// number, so the far end can check it arrived intact.
func (o *origin) write() uint16 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: o.seq, Timestamp: uint32(o.seq) * 960, SSRC: o.ssrc}
	n, _ := h.MarshalTo(o.buf[:])
	pl := payloadFor(o.seq)
	n += copy(o.buf[n:], pl)
	o.pub.WriteRTP(0, o.buf[:n])
	return o.seq
}

func payloadFor(seq uint16) []byte {
	b := make([]byte, 160)
	for i := range b {
		b[i] = byte(int(seq)*7 + i)
	}
	return b
}

// sink is a subscriber on the receiving node (a bridge subscription, the
// same path a participant's DownTrack takes from the cache).
type sink struct {
	mu      sync.Mutex
	got     map[uint16]bool
	corrupt int
	sub     *bridge.Subscription
}

func (s *sink) WriteRTP(_ int, pkt []byte) {
	var p rtp.Packet
	ok := p.Unmarshal(pkt) == nil && (p.PayloadType != 111 || string(p.Payload) == string(payloadFor(p.SequenceNumber)))
	s.mu.Lock()
	if ok {
		s.got[p.SequenceNumber] = true
	} else {
		s.corrupt++
	}
	s.mu.Unlock()
}

func (s *sink) has(seq uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[seq]
}

// hasAfter reports whether a packet written after seq mark arrived.
func (s *sink) hasAfter(mark uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for q := range s.got {
		if int16(q-mark) > 0 {
			return true
		}
	}
	return false
}

func (s *sink) count() (int, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got), s.corrupt
}

func subscribe(t testing.TB, rm *bridge.Room, id string) *sink {
	t.Helper()
	s := &sink{got: map[uint16]bool{}}
	sub, err := rm.Subscribe(id, 0, s)
	if err != nil {
		t.Fatal(err)
	}
	s.sub = sub
	return s
}

func hasTrack(rm *bridge.Room, id string) bool {
	for _, ti := range rm.Tracks() {
		if ti.ID == id && ti.Remote {
			return true
		}
	}
	return false
}

// flowing writes packets until every sink has one, so that the
// subscription is in place end to end.
func flowing(t testing.TB, o *origin, sinks ...*sink) {
	t.Helper()
	waitFor(t, "media flowing", func() bool {
		o.write()
		for _, s := range sinks {
			if n, _ := s.count(); n == 0 {
				return false
			}
		}
		return true
	})
}

// TestOneCopyPerLink: ten subscribers of one track on b get every packet
// intact, and exactly one datagram per packet crosses a to b.
func TestOneCopyPerLink(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	// Only a lists its peer, so only a dials: no packet goes out on a link
	// the tie-break closes a moment later (a no_link drop, counted below;
	// see TestMalformedInput).
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf")
	o := publishAudio(t, a, "conf", ra, "mic")
	waitFor(t, "track imported on b", func() bool { return hasTrack(rb, "mic") })
	var sinks []*sink
	for range 10 {
		sinks = append(sinks, subscribe(t, rb, "mic"))
	}
	flowing(t, o, sinks...)
	// Quiesce: the last packet written reached every sink.
	last := o.write()
	waitFor(t, "quiet", func() bool {
		for _, s := range sinks {
			if !s.has(last) {
				return false
			}
		}
		return true
	})
	outA, inB := a.relay.Stats().DatagramsOut, b.relay.Stats().DatagramsIn
	retransA := a.br.Stats().Retransmits
	startSeq := last
	// Bursts of 10, each waited for: the bridges' subscriber queues are
	// bounded, so an unpaced loop would drop there, before the relay. A
	// datagram lost on a loaded machine is repaired from a's cache once a
	// later packet reveals the gap, so a burst not complete yet gets one
	// more packet.
	const k = 500
	for range k / 10 {
		first := last + 1
		for range 10 {
			last = o.write()
		}
		waitFor(t, "a burst at every sink", func() bool {
			for _, s := range sinks {
				for q := first; q != last+1; q++ {
					if !s.has(q) {
						last = o.write()
						time.Sleep(5 * time.Millisecond)
						return false
					}
				}
			}
			return true
		})
	}
	sa, sb := a.relay.Stats(), b.relay.Stats()
	written := uint64(last - startSeq)
	retransmitted := a.br.Stats().Retransmits - retransA
	// One datagram per packet written, plus one per packet a's bridge
	// resent for a NACK; never one per subscriber.
	if d := sa.DatagramsOut - outA; d != written+retransmitted {
		t.Errorf("a sent %d datagrams for %d packets (+%d resent) and 10 subscribers, want %d", d, written, retransmitted, written+retransmitted)
	}
	if d := sb.DatagramsIn - inB; d > sa.DatagramsOut-outA || d < written {
		t.Errorf("b received %d datagrams, a sent %d, %d packets written", d, sa.DatagramsOut-outA, written)
	}
	t.Logf("%d packets, %d datagrams out, %d in, %d resent", written, sa.DatagramsOut-outA, sb.DatagramsIn-inB, retransmitted)
	for i, s := range sinks {
		if _, bad := s.count(); bad != 0 {
			t.Errorf("sink %d: %d corrupt packets", i, bad)
		}
	}
	if sa.Subscribed != 1 || sa.ExportedTrack != 1 || sb.ImportedTrack != 1 {
		t.Errorf("a exported %d (subscribed %d), b imported %d; want 1 each", sa.ExportedTrack, sa.Subscribed, sb.ImportedTrack)
	}
	waitFor(t, "link RTT measured on both sides", func() bool {
		pa, pb := a.relay.Stats().PerLink, b.relay.Stats().PerLink
		return len(pa) == 1 && len(pb) == 1 && pa[0].RTT > 0 && pb[0].RTT > 0 && pa[0].PeerRTT > 0
	})
	for r, n := range sa.Drops {
		if n != 0 {
			t.Errorf("a dropped %d (%s)", n, r)
		}
	}

	// The last subscriber leaving stops the flow: a's subscription ends,
	// and packets written afterwards reach a local subscriber on a but no
	// datagram leaves a.
	for _, s := range sinks {
		s.sub.Close()
	}
	waitFor(t, "a's export unsubscribed", func() bool { return a.relay.Stats().Subscribed == 0 })
	local := subscribe(t, ra, "mic")
	flowing(t, o, local)
	outA = a.relay.Stats().DatagramsOut
	for range 100 {
		last = o.write()
	}
	waitFor(t, "local subscriber on a got the packets", func() bool { return local.has(last) })
	if d := a.relay.Stats().DatagramsOut - outA; d != 0 {
		t.Fatalf("%d datagrams sent after the last remote subscriber left", d)
	}
}

// TestLinkBreakResumes: a link that breaks mid-meeting (its UDP traffic
// black-holed until QUIC gives up) is dialled again by itself, the remote
// track stays published on b meanwhile, and media resumes to the same
// subscriber.
func TestLinkBreakResumes(t *testing.T) {
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf", a)
	o := publishAudio(t, a, "conf", ra, "mic")
	waitFor(t, "track imported on b", func() bool { return hasTrack(rb, "mic") })
	s := subscribe(t, rb, "mic")
	flowing(t, o, s)
	opened := a.relay.Stats().LinksOpened

	b.conn.blocked.Store(true)
	waitFor(t, "link down on both sides", func() bool { return a.links() == 0 && b.links() == 0 })
	for range 20 {
		o.write() // lost: no link
	}
	if !hasTrack(rb, "mic") {
		t.Fatal("the remote track was unpublished during the break")
	}
	b.conn.blocked.Store(false)
	waitFor(t, "link up again", func() bool { return a.links() == 1 && b.links() == 1 })
	mark := o.write()
	waitFor(t, "media resumed", func() bool {
		o.write()
		return s.hasAfter(mark)
	})
	select {
	case <-s.sub.Done():
		t.Fatal("the subscription ended across the break")
	default:
	}
	if st := a.relay.Stats(); st.LinksOpened <= opened || st.Subscribed != 1 {
		t.Fatalf("after the break: %d links opened (before %d), %d subscribed", st.LinksOpened, opened, st.Subscribed)
	}
	if n := b.relay.Stats().ImportedTrack; n != 1 {
		t.Fatalf("b imports %d tracks, want 1", n)
	}
}

// TestThreeNodes: a meeting over three bridges, each publishing one track
// that the other two subscribe to; every payload arrives intact at every
// other node, each over its own link.
func TestThreeNodes(t *testing.T) {
	ca := newTestCA(t)
	ns := []*node{startNode(t, ca, "a"), startNode(t, ca, "b"), startNode(t, ca, "c")}
	rooms := make([]*bridge.Room, 3)
	for i, n := range ns {
		var peers []*node
		for j, m := range ns {
			if j != i {
				peers = append(peers, m)
			}
		}
		rooms[i] = n.attach(t, "conf", peers...)
	}
	origins := make([]*origin, 3)
	for i, n := range ns {
		origins[i] = publishAudio(t, n, "conf", rooms[i], "mic-"+n.name)
	}
	sinks := map[[2]int]*sink{}
	for i := range ns {
		for j := range ns {
			if i == j {
				continue
			}
			id := "mic-" + ns[j].name
			waitFor(t, id+" imported", func() bool { return hasTrack(rooms[i], id) })
			sinks[[2]int{i, j}] = subscribe(t, rooms[i], id)
		}
	}
	for j, o := range origins {
		var theirs []*sink
		for k, s := range sinks {
			if k[1] == j {
				theirs = append(theirs, s)
			}
		}
		flowing(t, o, theirs...)
		first := o.write()
		var last uint16
		for range 30 {
			last = o.write()
		}
		waitFor(t, fmt.Sprintf("packets of %s everywhere", ns[j].name), func() bool {
			for _, s := range theirs {
				for q := first; q != last+1; q++ {
					if !s.has(q) {
						o.write() // reveals a lost tail to the NACK logic
						time.Sleep(5 * time.Millisecond)
						return false
					}
				}
			}
			return true
		})
	}
	for k, s := range sinks {
		if _, bad := s.count(); bad != 0 {
			t.Errorf("node %d from %d: %d corrupt", k[0], k[1], bad)
		}
	}
	for _, n := range ns {
		if st := n.relay.Stats(); st.Links != 2 || st.ImportedTrack != 2 || st.Subscribed != 2 {
			t.Errorf("%s: %d links, %d imported, %d subscribed exports; want 2 each", n.name, st.Links, st.ImportedTrack, st.Subscribed)
		}
	}
}
