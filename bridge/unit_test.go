package bridge

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

func TestKeyframeDetection(t *testing.T) {
	tests := []struct {
		name string
		f    func([]byte) bool
		p    []byte
		want bool
	}{
		{"vp8 key, no ext", isVP8Keyframe, []byte{0x10, 0x10, 0x02, 0x00}, true},
		{"vp8 delta", isVP8Keyframe, []byte{0x10, 0x11, 0x02, 0x00}, false},
		{"vp8 key, not partition start", isVP8Keyframe, []byte{0x00, 0x10}, false},
		{"vp8 key, 15-bit picture id", isVP8Keyframe, vp8Payload(0, 300, true), true},
		{"vp8 delta, 15-bit picture id", isVP8Keyframe, vp8Payload(0, 300, false), false},
		{"vp8 key, I+L+T", isVP8Keyframe, []byte{0x90, 0xe0, 0x12, 0x05, 0x40, 0x10}, true},
		{"vp8 truncated", isVP8Keyframe, []byte{0x90, 0x80}, false},
		{"vp8 empty", isVP8Keyframe, nil, false},
		{"h264 idr", isH264Keyframe, []byte{0x65, 0x88}, true},
		{"h264 sps", isH264Keyframe, []byte{0x67, 0x42}, true},
		{"h264 non-idr", isH264Keyframe, []byte{0x41, 0x9a}, false},
		{"h264 stap-a with sps", isH264Keyframe, []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, true},
		{"h264 stap-a without", isH264Keyframe, []byte{0x78, 0x00, 0x02, 0x41, 0x42}, false},
		{"h264 stap-a truncated", isH264Keyframe, []byte{0x78, 0x00, 0x09, 0x67}, false},
		{"h264 fu-a idr start", isH264Keyframe, []byte{0x7c, 0x85}, true},
		{"h264 fu-a idr middle", isH264Keyframe, []byte{0x7c, 0x05}, false},
		{"vp9 key", isVP9Keyframe, []byte{0x08}, true},
		{"vp9 inter", isVP9Keyframe, []byte{0x48}, false},
		{"vp9 not begin", isVP9Keyframe, []byte{0x00}, false},
		{"vp9 key spatial 1", isVP9Keyframe, []byte{0xa8, 0x01, 0x02}, false},
		{"vp9 key spatial 0", isVP9Keyframe, []byte{0xa8, 0x01, 0x00}, true},
		{"av1 new sequence", isAV1Keyframe, []byte{0x18}, true},
		{"av1 other", isAV1Keyframe, []byte{0x10}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f(tc.p); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if h := vp8Height(vp8Payload(1, 0, true)); h != 360 {
		t.Errorf("vp8Height = %d, want 360", h)
	}
	if keyframeFunc("audio/opus") != nil || keyframeFunc("video/VP8") == nil {
		t.Error("keyframeFunc by MIME type")
	}
}

func TestPacketCache(t *testing.T) {
	c := newPacketCache(8)
	dst := make([]byte, slotSize)
	for seq := uint16(65530); seq != 4; seq++ {
		if !c.store(seq, []byte{byte(seq), 1, 2}, flagKeyframe) {
			t.Fatal("store failed")
		}
	}
	if n, _ := c.get(65531, dst); n != 0 {
		t.Error("evicted packet still found")
	}
	n, flags := c.get(2, dst)
	if n != 3 || dst[0] != 2 || flags != flagKeyframe {
		t.Errorf("get(2) = %d %v %x", n, dst[:n], flags)
	}
	if c.store(9, make([]byte, slotSize+1), 0) {
		t.Error("oversized packet stored")
	}
}

func TestOrderRIDs(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"f", "h", "q"}, []string{"q", "h", "f"}},
		{[]string{"h", "q"}, []string{"q", "h"}},
		{[]string{"lo", "mid", "hi"}, []string{"lo", "mid", "hi"}},
		{[]string{"a", "b", "c", "d", "e"}, []string{"a", "b", "c", "d"}},
	}
	for _, tc := range tests {
		got := orderRIDs(tc.in)
		if len(got) != len(tc.want) {
			t.Fatalf("orderRIDs(%v) = %v", tc.in, got)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("orderRIDs(%v) = %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}

// feeder drives an UpTrack with synthetic simulcast VP8 frames: one packet
// per frame per layer, each layer with its own sequence and timestamp base.
type feeder struct {
	u     *UpTrack
	pb    packetBuilder
	hdr   rtp.Header
	seqs  []uint16
	frame uint32
}

func newFeeder(u *UpTrack) *feeder {
	f := &feeder{u: u, pb: packetBuilder{buf: make([]byte, 1500)}}
	for i := range u.layers {
		f.seqs = append(f.seqs, uint16(1000*i+60000))
	}
	return f
}

func (f *feeder) frameAll(kf bool) {
	for li := range f.u.layers {
		pkt := f.pb.build(f.seqs[li], uint32(li)*1_000_000+f.frame*3000, vp8Payload(li, f.frame, kf), false)
		f.seqs[li]++
		f.u.handlePacket(li, pkt, &f.hdr)
	}
	f.frame++
}

// TestPaddingNotKeyframe: a padding-only packet whose padding bytes would
// read as a VP8 keyframe descriptor does not start a stream.
func TestPaddingNotKeyframe(t *testing.T) {
	u := testUpTrack(webrtc.RTPCodecTypeVideo, 1)
	var w countingWriter
	testDownTrack(u, &w)
	pkt := []byte{0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0x04, 0xd2, 0x10, 0x10, 0x00, 0x04}
	var hdr rtp.Header
	u.handlePacket(0, pkt, &hdr)
	if n, flags := u.layers[0].cache.get(1, make([]byte, slotSize)); n == 0 || flags&flagKeyframe != 0 {
		t.Fatalf("padding-only packet: cached %d bytes, flags %#x", n, flags)
	}
}

// TestLayerSwitchRewrite checks the rewrite across layer switches in
// process: output sequence numbers continue by one, timestamps move
// forward, the switch happens on a keyframe of the target layer only.
func TestLayerSwitchRewrite(t *testing.T) {
	u := testUpTrack(webrtc.RTPCodecTypeVideo, 3)
	var log [][2]uint32
	w := countingWriter{log: &log}
	dt := testDownTrack(u, &w)
	f := newFeeder(u)
	step := func(kf bool) {
		before := w.packets
		f.frameAll(kf)
		dt.drain()
		if w.packets > before {
			if _, k, ok := checkVP8Payload(w.lastPayload[:w.lastLen]); !ok {
				t.Fatalf("payload altered")
			} else if before == 0 && !k {
				t.Fatalf("stream starts without a keyframe")
			}
		}
	}
	step(false) // no keyframe yet: nothing
	if w.packets != 0 {
		t.Fatal("forwarded before a keyframe")
	}
	step(true)
	for i := 0; i < 5; i++ {
		step(false)
	}
	layerOf := func() byte { l, _, _ := checkVP8Payload(w.lastPayload[:w.lastLen]); return l }
	if layerOf() != 2 {
		t.Fatalf("layer %d, want 2", layerOf())
	}
	dt.target.Store(0)
	step(false)
	if layerOf() != 2 {
		t.Fatal("switched without a keyframe")
	}
	step(true)
	if layerOf() != 0 {
		t.Fatalf("layer %d after keyframe, want 0", layerOf())
	}
	step(false)
	dt.target.Store(1)
	step(true)
	step(false)
	if layerOf() != 1 {
		t.Fatalf("layer %d, want 1", layerOf())
	}
	// NACKs: the newest packet (layer 1) and the last one of layer 0, from
	// before the switch, come back with the same seq, timestamp and layer.
	written := append([][2]uint32(nil), log...)
	for _, tc := range []struct {
		back  int
		layer byte
	}{{1, 1}, {3, 0}} {
		want := written[len(written)-tc.back]
		dt.enqueueNACK(uint16(want[0]))
		dt.drain()
		if w.last.SequenceNumber != uint16(want[0]) || w.last.Timestamp != want[1] || layerOf() != tc.layer {
			t.Errorf("NACK %d: got seq %d ts %d layer %d, want ts %d layer %d", want[0], w.last.SequenceNumber, w.last.Timestamp, layerOf(), want[1], tc.layer)
		}
	}
	if st := u.stats.snapshot(); st.Retransmits != 2 {
		t.Errorf("retransmits %d, want 2", st.Retransmits)
	}
	log = written
	for i := 1; i < len(log); i++ {
		if uint16(log[i][0]) != uint16(log[i-1][0])+1 {
			t.Errorf("seq %d follows %d", log[i][0], log[i-1][0])
		}
		if int32(log[i][1]-log[i-1][1]) <= 0 {
			t.Errorf("timestamp %d follows %d", log[i][1], log[i-1][1])
		}
	}
}

// TestQueueOverflow: video drops to the next keyframe and resumes with
// continuous sequence numbers; audio drops the oldest.
func TestQueueOverflow(t *testing.T) {
	u := testUpTrack(webrtc.RTPCodecTypeVideo, 1)
	var w countingWriter
	dt := testDownTrack(u, &w)
	f := newFeeder(u)
	f.frameAll(true)
	dt.drain()
	last := w.last.SequenceNumber
	for i := 0; i < queueLen+10; i++ { // the writer is stuck
		f.frameAll(false)
	}
	st := u.stats.snapshot()
	if st.Drops.QueueFull == 0 || st.Drops.WaitKeyframe == 0 {
		t.Fatalf("drops %+v", st.Drops)
	}
	if !dt.needsKeyframe() {
		t.Fatal("no keyframe awaited after overflow")
	}
	if !u.layers[0].wantPLI.Load() {
		t.Fatal("no PLI requested after overflow")
	}
	dt.drain()
	if w.last.SequenceNumber != last {
		t.Fatal("packets of the dropped run written")
	}
	f.frameAll(true)
	f.frameAll(false)
	dt.drain()
	if w.last.SequenceNumber != last+2 {
		t.Fatalf("resumed at seq %d, want %d", w.last.SequenceNumber, last+2)
	}

	a := testUpTrack(webrtc.RTPCodecTypeAudio, 1)
	var aw countingWriter
	adt := testDownTrack(a, &aw)
	var pb packetBuilder
	pb.buf = make([]byte, 1500)
	var hdr rtp.Header
	for i := 0; i < queueLen+5; i++ {
		a.handlePacket(0, pb.build(uint16(i), uint32(i)*960, audioPayload(uint32(i)), true), &hdr)
	}
	adt.drain()
	if aw.packets != queueLen {
		t.Fatalf("audio: %d written, want %d", aw.packets, queueLen)
	}
	if aw.last.SequenceNumber != queueLen+4 {
		t.Fatalf("audio: last seq %d, want the newest", aw.last.SequenceNumber)
	}
}

// TestKeyframeReplay: a subscriber that joins after the keyframe gets it
// from the cache at once when it is recent, and a PLI goes out when not.
func TestKeyframeReplay(t *testing.T) {
	for _, tc := range []struct {
		name   string
		deltas int
		replay bool
	}{{"recent", 5, true}, {"too old", maxReplay + 5, false}} {
		t.Run(tc.name, func(t *testing.T) {
			u := testUpTrack(webrtc.RTPCodecTypeVideo, 1)
			f := newFeeder(u)
			f.frameAll(true)
			for i := 0; i < tc.deltas; i++ {
				f.frameAll(false)
			}
			var log [][2]uint32
			w := countingWriter{log: &log}
			dt := testDownTrack(u, &w)
			dt.startVideo()
			dt.drain()
			if tc.replay {
				if w.packets != tc.deltas+1 {
					t.Fatalf("replayed %d packets, want %d", w.packets, tc.deltas+1)
				}
				if u.layers[0].wantPLI.Load() {
					t.Error("PLI sent although the cache had the keyframe")
				}
			} else {
				if w.packets != 0 {
					t.Fatalf("replayed %d packets of a stale keyframe", w.packets)
				}
				if !u.layers[0].wantPLI.Load() {
					t.Fatal("no PLI when the keyframe is too old")
				}
			}
			f.frameAll(false) // live traffic continues the replayed stream
			dt.drain()
			for i := 1; i < len(log); i++ {
				if uint16(log[i][0]) != uint16(log[i-1][0])+1 {
					t.Errorf("seq %d follows %d", log[i][0], log[i-1][0])
				}
			}
		})
	}
}

// TestSelectLayer: the target is the highest active layer that fits the
// max height and the bandwidth share; going up needs headroom.
func TestSelectLayer(t *testing.T) {
	u := testUpTrack(webrtc.RTPCodecTypeVideo, 3)
	for i, rate := range []int64{100_000, 400_000, 1_500_000} {
		u.layers[i].bitrate.Store(rate)
		u.layers[i].lastPacket.Store(1)
	}
	var w countingWriter
	dt := testDownTrack(u, &w)
	steps := []struct {
		maxHeight int32
		budget    int64
		want      int32
	}{
		{-1, 0, 2},         // no limit
		{360, 0, 1},        // 720/360/180 ladder
		{200, 0, 0},        // between layers: the one below
		{100, 0, 0},        // below every layer: the lowest
		{0, 0, -1},         // paused
		{-1, 1_000_000, 1}, // budget fits the middle layer
		{-1, 1_700_000, 1}, // top fits, but not with 25 % headroom
		{-1, 2_000_000, 2}, // top with headroom
		{-1, 1_600_000, 2}, // staying needs no headroom
		{-1, 50_000, 0},    // nothing fits: the lowest
		{-1, 450_000, 0},   // middle fits, not with headroom
	}
	for _, s := range steps {
		dt.maxHeight.Store(s.maxHeight)
		dt.selectLayer(s.budget)
		if got := dt.target.Load(); got != s.want {
			t.Fatalf("maxHeight %d budget %d: layer %d, want %d", s.maxHeight, s.budget, got, s.want)
		}
	}
	u.layers[2].lastPacket.Store(0) // the top layer stops
	dt.maxHeight.Store(-1)
	dt.selectLayer(0)
	if got := dt.target.Load(); got != 1 {
		t.Fatalf("top layer inactive: layer %d, want 1", got)
	}
}
