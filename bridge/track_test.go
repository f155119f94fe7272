package bridge

import (
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Tests of the relay seam (track.go): Room.Publish, Room.Subscribe and
// what flows between them and a TrackSource/TrackSink. recSource and
// recSink are hand-written fakes of the relay's two ends.

// recSource records what a track asks of its source.
type recSource struct {
	mu          sync.Mutex
	keyframes   []int
	retransmits [maxLayers][]uint16
	demands     []Demand
	changed     chan struct{} // capacity 1: something was recorded
}

func newRecSource() *recSource { return &recSource{changed: make(chan struct{}, 1)} }

// publishVP8 publishes track "t1" of the given number of VP8 layers in r,
// fed by a new recSource.
func publishVP8(t *testing.T, r *Room, layers int) (*Publication, *recSource) {
	t.Helper()
	src := newRecSource()
	pub, err := r.Publish(vp8Params("t1", layers), src)
	if err != nil {
		t.Fatal(err)
	}
	return pub, src
}

func (s *recSource) note() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *recSource) RequestKeyframe(layer int) {
	s.mu.Lock()
	s.keyframes = append(s.keyframes, layer)
	s.mu.Unlock()
	s.note()
}

func (s *recSource) RequestRetransmit(layer int, seqs []uint16) {
	s.mu.Lock()
	s.retransmits[layer] = append(s.retransmits[layer], seqs...)
	s.mu.Unlock()
	s.note()
}

func (s *recSource) SetDemand(d Demand) {
	s.mu.Lock()
	s.demands = append(s.demands, d)
	s.mu.Unlock()
	s.note()
}

// demand returns the last demand reported (none before the first).
func (s *recSource) demand() Demand {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.demands) == 0 {
		return 0
	}
	return s.demands[len(s.demands)-1]
}

func (s *recSource) asked(layer int) []uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.retransmits[layer])
}

func (s *recSource) keyframesAsked() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keyframes)
}

// recSink records what a subscription delivers. It allocates nothing per
// packet unless log is set.
type recSink struct {
	mu      sync.Mutex
	packets int
	layer   int
	seq     uint16
	ssrc    uint32
	kf      bool
	log     bool
	seqs    []uint16 // when log: every sequence number, in order
	layers  []int    // when log: the layer of each
}

func (s *recSink) WriteRTP(layer int, pkt []byte) {
	s.mu.Lock()
	s.packets++
	s.layer = layer
	s.seq = binary.BigEndian.Uint16(pkt[2:])
	s.ssrc = binary.BigEndian.Uint32(pkt[8:])
	s.kf = isVP8Keyframe(pkt[12:])
	if s.log {
		s.seqs = append(s.seqs, s.seq)
		s.layers = append(s.layers, layer)
	}
	s.mu.Unlock()
}

func (s *recSink) last() (packets, layer int, seq uint16, kf bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.packets, s.layer, s.seq, s.kf
}

// unstartedBridge is a bridge whose muxes and clock never start: rooms,
// tracks and subscriptions work; its coarse clock stays at 1.
func unstartedBridge(t *testing.T) *Bridge {
	t.Helper()
	b := &Bridge{log: testLogger(), rooms: map[*Room]struct{}{}, done: make(chan struct{})}
	b.now.Freeze(1)
	return b
}

func vp8Params(id string, layers int) PublishParams {
	p := PublishParams{
		TrackID:     id,
		Participant: "far",
		Kind:        webrtc.RTPCodecTypeVideo,
		Codec:       webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96},
	}
	for i := 0; i < layers; i++ {
		p.Layers = append(p.Layers, LayerInfo{RID: string("qhf"[i]), Height: layerHeights[i], Bitrate: int64(100_000 << (2 * i))})
	}
	return p
}

// TestRelayPathNoAlloc: the relay-shaped path allocates nothing per
// packet. Publication.WriteRTP parses, stores once and fans out to a
// sink subscription (writer: cache copy, layer choice, sink) and to a
// participant's DownTrack (writer: cache copy, rewrite, pion write); every
// tenth packet is lost on the way in, so gap detection runs too.
func TestRelayPathNoAlloc(t *testing.T) {
	b := unstartedBridge(t)
	r := b.NewRoom("alloc", RoomEvents{})
	params := vp8Params("t1", 1)
	pub := &Publication{up: newRemoteTrack(r, params, newRecSource())}
	up := pub.up
	var sink recSink
	var wg sync.WaitGroup
	sdt := newSinkTrack(up, &sink, &wg)
	sdt.subn = &Subscription{dt: sdt}
	up.attach(sdt)
	up.addSub(sdt)
	var w countingWriter
	pdt := testDownTrack(up, &w)

	pb := &packetBuilder{buf: make([]byte, 1500)}
	pkt := append([]byte(nil), pb.build(1000, 0, vp8Payload(0, 0, true), false)...)
	delta := append([]byte(nil), pb.build(1000, 0, vp8Payload(0, 1, false), false)...)
	seq := uint16(1000)
	sent := 0
	forward := func() {
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*3000)
		seq++
		if seq%10 != 0 {
			pub.WriteRTP(0, pkt)
			sent++
		}
		sdt.drain()
		pdt.drain()
		pkt = delta
	}
	forward() // the keyframe starts both subscribers
	allocs := testing.AllocsPerRun(1000, forward)
	if allocs != 0 {
		t.Fatalf("%.1f allocations per relayed packet, want 0", allocs)
	}
	if sink.packets != sent || w.packets != sent {
		t.Fatalf("sink got %d, participant %d packets of %d", sink.packets, w.packets, sent)
	}
	if sink.ssrc != 1234 || sink.seq != seq-1 {
		t.Errorf("sink got SSRC %d seq %d, want the publisher's 1234 and %d", sink.ssrc, sink.seq, seq-1)
	}
	if w.last.SSRC != 0xdeadbeef {
		t.Errorf("participant's packet not rewritten: SSRC %#x", w.last.SSRC)
	}
	if up.layers[0].nacks.n == 0 {
		t.Error("no gap noted: the lossy path was not exercised")
	}
}

// TestPublishRetransmitRequests: a track fed through Publish asks its
// source for the packets missing from its cache, once per packet until it
// arrives, again after nackRetry while it does not, at most nackTries
// times; a gap wider than maxNACKGap asks for a keyframe instead.
func TestPublishRetransmitRequests(t *testing.T) {
	b := unstartedBridge(t)
	r := b.NewRoom("gaps", RoomEvents{})
	defer r.Close()
	pub, src := publishVP8(t, r, 1)
	pb := &packetBuilder{buf: make([]byte, 1500)}
	send := func(seq uint16) {
		pub.WriteRTP(0, pb.build(seq, uint32(seq)*3000, vp8Payload(0, uint32(seq), seq == 100), false))
	}
	for s := uint16(100); s < 110; s++ {
		if s != 104 && s != 105 {
			send(s)
		}
	}
	eventually(t, 5*time.Second, "retransmit request", func() bool { return len(src.asked(0)) >= 2 })
	if got := src.asked(0)[:2]; !slices.Contains(got, 104) || !slices.Contains(got, 105) {
		t.Fatalf("asked for %v, want 104 and 105", got)
	}
	send(104) // arrives late: not asked again
	for s := uint16(110); s < 115; s++ {
		send(s) // in order: nothing new is missing
	}
	eventually(t, 5*time.Second, "105 given up", func() bool { return b.Stats().Unrepaired >= 1 })
	asked := src.asked(0)
	n104, n105 := 0, 0
	for _, s := range asked {
		switch s {
		case 104:
			n104++
		case 105:
			n105++
		default:
			t.Fatalf("asked for %d, which was never missing (%v)", s, asked)
		}
	}
	if n104 < 1 || n104 > 2 || n105 != nackTries {
		t.Fatalf("asked for 104 %d times and 105 %d times, want 104 once or twice (before it arrived) and 105 %d times", n104, n105, nackTries)
	}
	if st := b.Stats(); st.RetransmitRequests != uint64(len(asked)) || st.Unrepaired != 1 {
		t.Errorf("stats: %d retransmit requests, %d unrepaired; want %d, 1", st.RetransmitRequests, st.Unrepaired, len(asked))
	}

	// A break, not a loss: a keyframe, not 100 NACKs.
	send(115 + maxNACKGap + 5)
	eventually(t, 5*time.Second, "keyframe request after a wide gap", func() bool { return len(src.keyframesAsked()) > 0 })
	if got := len(src.asked(0)); got != len(asked) {
		t.Errorf("a wide gap was asked for packet by packet (%d more requests)", got-len(asked))
	}
}

// TestNACKListBounded: at most maxMissing sequence numbers per layer are
// kept, without duplicates.
func TestNACKListBounded(t *testing.T) {
	var l nackList
	if over := l.add(0, 10); over != 0 {
		t.Fatalf("over %d", over)
	}
	if over := l.add(5, 15); over != 0 || l.n != 15 {
		t.Fatalf("overlapping add: over %d, %d kept, want 0, 15", over, l.n)
	}
	if over := l.add(100, 200); over != 100-(maxMissing-15) || l.n != maxMissing {
		t.Fatalf("over %d with %d kept", over, l.n)
	}
	l.remove(3)
	seqs, more, gaveUp := l.due(nil, 1)
	if len(seqs) != maxMissing-1 || !more || gaveUp != 0 || slices.Contains(seqs, 3) {
		t.Fatalf("due: %d seqs (3 among them: %v), more %v, gave up %d", len(seqs), slices.Contains(seqs, 3), more, gaveUp)
	}
	if seqs, _, _ = l.due(nil, 2); len(seqs) != 0 {
		t.Fatalf("asked again %d seqs before nackRetry", len(seqs))
	}
}

// TestPublishDemand: the source is told which layers the subscribers
// target, as they come, change layer and go.
func TestPublishDemand(t *testing.T) {
	b := unstartedBridge(t)
	var events roomLog
	r := b.NewRoom("demand", events.events())
	defer r.Close()
	pub, src := publishVP8(t, r, 3)
	if pub.Info().Remote != true || len(events.published) != 1 || !events.published[0].Remote {
		t.Fatalf("TrackPublished %+v, want one event with Remote set", events.published)
	}
	waitDemand := func(want Demand) {
		t.Helper()
		eventually(t, 5*time.Second, "demand", func() bool { return src.demand() == want })
	}
	var s1, s2 recSink
	a, err := r.Subscribe("t1", 1, &s1)
	if err != nil {
		t.Fatal(err)
	}
	waitDemand(1 << 1)
	c, err := r.Subscribe("t1", 2, &s2)
	if err != nil {
		t.Fatal(err)
	}
	waitDemand(1<<1 | 1<<2)
	if d := src.demand(); d.Highest() != 2 || !d.Has(1) || d.Has(0) {
		t.Fatalf("demand %08b: Highest %d", d, d.Highest())
	}
	a.SetLayer(0)
	waitDemand(1<<0 | 1<<2)
	c.SetLayer(-1) // paused
	waitDemand(1 << 0)
	c.Close()
	a.Close()
	waitDemand(0)
	if _, err := r.Subscribe("nope", 0, &s1); err != ErrTrackNotFound {
		t.Fatalf("Subscribe to an unknown track: %v", err)
	}
	pub.Close()
	if _, unpub := events.counts(); unpub != 1 {
		t.Fatalf("TrackUnpublished %d times", unpub)
	}
}

// TestPublishValidates: Publish refuses what it cannot route.
func TestPublishValidates(t *testing.T) {
	b := unstartedBridge(t)
	r := b.NewRoom("validate", RoomEvents{})
	defer r.Close()
	src := newRecSource()
	ok := vp8Params("t1", 3)
	bad := map[string]func(p *PublishParams){
		"no track ID":    func(p *PublishParams) { p.TrackID = "" },
		"long ID":        func(p *PublishParams) { p.Participant = string(make([]byte, 65)) },
		"no clock rate":  func(p *PublishParams) { p.Codec.ClockRate = 0 },
		"kind and codec": func(p *PublishParams) { p.Kind = webrtc.RTPCodecTypeAudio },
		"too many layers": func(p *PublishParams) {
			p.Layers = append(p.Layers, LayerInfo{}, LayerInfo{})
		},
		"level ID": func(p *PublishParams) { p.AudioLevelID = 15 },
	}
	for name, f := range bad {
		p := ok
		p.Layers = slices.Clone(ok.Layers)
		f(&p)
		if _, err := r.Publish(p, src); err != ErrInvalidTrack {
			t.Errorf("%s: %v, want ErrInvalidTrack", name, err)
		}
	}
	if _, err := r.Publish(ok, nil); err != ErrInvalidTrack {
		t.Errorf("nil source: %v", err)
	}
	if _, err := r.Publish(ok, src); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(ok, src); err != ErrDuplicateTrack {
		t.Errorf("same ID twice: %v", err)
	}
}

// TestRelayKeyframeSwitch: on a track fed through Publish, a sink
// subscription gets the packets of its layer as sent and switches layer
// at the new layer's keyframe; a participant's DownTrack targets a layer
// declared by the source but not flowing yet (nobody here wanted it), the
// demand tells the source, and the switch happens when that layer's
// keyframe arrives.
func TestRelayKeyframeSwitch(t *testing.T) {
	b := unstartedBridge(t)
	r := b.NewRoom("switch", RoomEvents{})
	defer r.Close()
	pub, src := publishVP8(t, r, 3)
	up := pub.up
	f := &feeder{u: up, pb: packetBuilder{buf: make([]byte, 1500)}, seqs: []uint16{100, 2000, 30000}}
	feed := func(li int, kf bool) uint16 {
		seq := f.seqs[li]
		f.seqs[li]++
		pub.WriteRTP(li, f.pb.build(seq, f.frame*3000, vp8Payload(li, f.frame, kf), false))
		f.frame++
		return seq
	}

	sink := &recSink{log: true}
	sub, err := r.Subscribe("t1", 0, sink)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	eventually(t, 5*time.Second, "keyframe asked for layer 0", func() bool { return slices.Contains(src.keyframesAsked(), 0) })
	feed(0, false) // not a keyframe: not forwarded
	k0 := feed(0, true)
	d0 := feed(0, false)
	eventually(t, 5*time.Second, "layer 0 forwarded", func() bool { n, _, _, _ := sink.last(); return n == 2 })
	if sub.Layer() != 0 {
		t.Fatalf("Layer %d, want 0", sub.Layer())
	}
	sub.SetLayer(2)
	eventually(t, 5*time.Second, "keyframe asked for layer 2", func() bool { return slices.Contains(src.keyframesAsked(), 2) })
	feed(2, false) // delta of the new layer: no switch yet
	d1 := feed(0, false)
	k2 := feed(2, true)
	feed(0, false) // the old layer is no longer forwarded
	d2 := feed(2, false)
	eventually(t, 5*time.Second, "switched to layer 2", func() bool { n, _, _, _ := sink.last(); return n == 5 })
	sink.mu.Lock()
	gotSeqs, gotLayers := slices.Clone(sink.seqs), slices.Clone(sink.layers)
	sink.mu.Unlock()
	wantSeqs, wantLayers := []uint16{k0, d0, d1, k2, d2}, []int{0, 0, 0, 2, 2}
	if !slices.Equal(gotSeqs, wantSeqs) || !slices.Equal(gotLayers, wantLayers) {
		t.Fatalf("sink got seqs %v layers %v, want %v %v (original sequence numbers, switch at the keyframe)", gotSeqs, gotLayers, wantSeqs, wantLayers)
	}
	// Retransmission from the cache, as sent.
	sub.Retransmit(0, []uint16{d0})
	eventually(t, 5*time.Second, "retransmission", func() bool { n, _, _, _ := sink.last(); return n == 6 })
	if _, l, s, _ := sink.last(); l != 0 || s != d0 {
		t.Fatalf("retransmitted layer %d seq %d, want 0 %d", l, s, d0)
	}

	// A participant's DownTrack: layer 1 was declared but never fed.
	var w countingWriter
	dt := testDownTrack(up, &w)
	dt.selectLayer(450_000) // declared bitrates 100k, 400k, 1.6M
	if got := dt.target.Load(); got != 1 {
		t.Fatalf("target %d, want the declared layer 1 that fits the budget", got)
	}
	eventually(t, 5*time.Second, "demand includes layer 1", func() bool { return src.demand().Has(1) })
	feed(1, false)
	dt.drain()
	if w.packets != 0 {
		t.Fatal("forwarded a delta before the keyframe")
	}
	feed(1, true)
	feed(1, false)
	dt.drain()
	if w.packets != 2 {
		t.Fatalf("%d packets after layer 1's keyframe, want 2", w.packets)
	}
	if l, _, _ := checkVP8Payload(w.lastPayload[:w.lastLen]); l != 1 {
		t.Fatalf("layer %d, want 1", l)
	}
}

// TestSubscribeReplaysKeyframe: a sink that subscribes to a track with a
// recent keyframe in its cache gets it at once, without asking the
// source.
func TestSubscribeReplaysKeyframe(t *testing.T) {
	b := unstartedBridge(t)
	r := b.NewRoom("replay", RoomEvents{})
	defer r.Close()
	pub, _ := publishVP8(t, r, 1)
	pb := &packetBuilder{buf: make([]byte, 1500)}
	for s := uint16(0); s < 5; s++ {
		pub.WriteRTP(0, pb.build(s, uint32(s)*3000, vp8Payload(0, uint32(s), s == 1), false))
	}
	sink := &recSink{log: true}
	sub, err := r.Subscribe("t1", 0, sink)
	if err != nil {
		t.Fatal(err)
	}
	// No packet is fed after Subscribe: what arrives comes from the cache.
	eventually(t, 5*time.Second, "replay", func() bool { n, _, _, _ := sink.last(); return n == 4 })
	sink.mu.Lock()
	got := slices.Clone(sink.seqs)
	sink.mu.Unlock()
	if !slices.Equal(got, []uint16{1, 2, 3, 4}) {
		t.Fatalf("replayed %v, want the keyframe 1 and what followed", got)
	}
	sub.Close()
	select {
	case <-sub.Done():
	default:
		t.Fatal("Done not closed after Close")
	}
}

// TestNACKQueueFullCounted: a retransmission that does not fit a full
// subscriber queue is dropped and counted (it used to vanish silently).
func TestNACKQueueFullCounted(t *testing.T) {
	u := testUpTrack(webrtc.RTPCodecTypeAudio, 1)
	var w countingWriter
	dt := testDownTrack(u, &w)
	var pb packetBuilder
	pb.buf = make([]byte, 1500)
	var hdr rtp.Header
	for i := 0; i < queueLen; i++ { // the writer is stuck: the queue fills
		u.handlePacket(0, pb.build(uint16(i), uint32(i)*960, audioPayload(uint32(i)), true), &hdr)
	}
	dt.enqueueNACK(5)
	if got := u.stats.snapshot().Drops.NACKQueueFull; got != 1 {
		t.Fatalf("NACKQueueFull = %d, want 1", got)
	}
}

// FuzzPublishWriteRTP feeds arbitrary datagrams, as a relay link would, to
// a three-layer track fed through Publish with a sink subscription and a
// participant's DownTrack: parsing, gap detection, NACK bookkeeping and
// both writers must count, not panic.
func FuzzPublishWriteRTP(f *testing.F) {
	var pb packetBuilder
	pb.buf = make([]byte, 1500)
	f.Add(uint8(0), append([]byte(nil), pb.build(1, 3000, vp8Payload(0, 1, true), false)...), append([]byte(nil), pb.build(9, 6000, vp8Payload(0, 2, false), false)...))
	f.Add(uint8(2), append([]byte(nil), pb.build(65530, 3000, vp8Payload(2, 1, true), false)...), append([]byte(nil), pb.build(3, 6000, vp8Payload(2, 2, false), true)...))
	f.Add(uint8(7), []byte{0x80, 96, 0, 1}, []byte{})
	f.Fuzz(func(t *testing.T, layer uint8, a, b []byte) {
		br := &Bridge{log: testLogger(), rooms: map[*Room]struct{}{}}
		br.now.Freeze(1)
		r := br.NewRoom("fuzz", RoomEvents{})
		pub := &Publication{up: newRemoteTrack(r, vp8Params("t1", 3), newRecSource())}
		var sink recSink
		var wg sync.WaitGroup
		sdt := newSinkTrack(pub.up, &sink, &wg)
		sdt.subn = &Subscription{dt: sdt}
		sdt.target.Store(int32(layer % 3))
		pub.up.attach(sdt)
		pub.up.addSub(sdt)
		var w countingWriter
		pdt := testDownTrack(pub.up, &w)
		for _, pkt := range [][]byte{a, b, a} {
			pub.WriteRTP(int(layer%4), pkt)
			sdt.drain()
			pdt.drain()
		}
		for li, l := range pub.up.layers {
			seqs, _, _ := l.nacks.due(nil, 1)
			(&Subscription{dt: sdt}).Retransmit(li, seqs)
		}
		sdt.drain()
	})
}

// BenchmarkRelayPath: one 1000-byte VP8 packet written to a publication
// (parse, store once, fan out) and forwarded by a sink subscription (cache
// copy, layer choice, sink) and a participant's DownTrack (cache copy,
// rewrite, write to a stand-in for pion), all in this goroutine: the
// bridge's own share of the CPU a relayed packet costs.
func BenchmarkRelayPath(b *testing.B) {
	br := &Bridge{log: testLogger(), rooms: map[*Room]struct{}{}}
	br.now.Freeze(1)
	r := br.NewRoom("bench", RoomEvents{})
	pub := &Publication{up: newRemoteTrack(r, vp8Params("t1", 1), newRecSource())}
	var sink recSink
	var wg sync.WaitGroup
	sdt := newSinkTrack(pub.up, &sink, &wg)
	sdt.subn = &Subscription{dt: sdt}
	pub.up.attach(sdt)
	pub.up.addSub(sdt)
	var w countingWriter
	pdt := testDownTrack(pub.up, &w)
	payload := make([]byte, benchPayload)
	copy(payload, vp8Payload(0, 1, true))
	pb := &packetBuilder{buf: make([]byte, 1500)}
	pkt := append([]byte(nil), pb.build(0, 0, payload, false)...)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	seq := uint16(0)
	for b.Loop() {
		binary.BigEndian.PutUint16(pkt[2:], seq)
		seq++
		pub.WriteRTP(0, pkt)
		sdt.drain()
		pdt.drain()
	}
	if sink.packets == 0 || w.packets == 0 {
		b.Fatal("nothing forwarded")
	}
}
