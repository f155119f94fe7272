package bridge

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// countingWriter stands in for the SRTP writer in the unit tests of the
// forwarding path. It keeps the last header it was given.
type countingWriter struct {
	packets, bytes int
	last           rtp.Header
	lastPayload    [slotSize]byte
	lastLen        int
	level          byte // audio level extension (ID 3) of the last packet
	// log, when set, records every sequence number and timestamp written.
	log *[][2]uint32
}

func (w *countingWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.packets++
	w.bytes += len(payload)
	w.last.SequenceNumber, w.last.Timestamp, w.last.SSRC, w.last.PayloadType, w.last.Marker =
		h.SequenceNumber, h.Timestamp, h.SSRC, h.PayloadType, h.Marker
	w.last.Extension = h.Extension
	w.level = 0
	if e := h.GetExtension(3); len(e) == 1 {
		w.level = e[0]
	}
	w.lastLen = copy(w.lastPayload[:], payload)
	if w.log != nil {
		*w.log = append(*w.log, [2]uint32{uint32(h.SequenceNumber), h.Timestamp})
	}
	return len(payload), nil
}

// testUpTrack builds an UpTrack with the given number of layers and no
// PeerConnection or source behind it, in a room of a bridge that is not
// started (the coarse clock stays at 1).
func testUpTrack(kind webrtc.RTPCodecType, layers int) *UpTrack {
	b := &Bridge{log: testLogger(), rooms: map[*Room]struct{}{}}
	b.now.Freeze(1)
	r := b.NewRoom("test", RoomEvents{})
	codec := webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}
	if kind == webrtc.RTPCodecTypeAudio {
		codec = webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000}, PayloadType: 111}
	}
	ls := make([]LayerInfo, layers)
	for i := range ls {
		ls[i].RID = string(rune('a' + i))
	}
	u := newTrack(r, TrackInfo{ID: "t1", Participant: "pub", Kind: kind}, codec, ls, &b.stats, &b.now)
	if kind == webrtc.RTPCodecTypeAudio {
		u.levelExtID = 1
	}
	return u
}

// testDownTrack subscribes a bound, connected DownTrack (without writer
// goroutine: the test calls drain) writing to w.
func testDownTrack(u *UpTrack, w rtpWriter) *DownTrack {
	sub := &Participant{id: "sub"}
	sub.subReady.Store(true)
	dt := newDownTrack(u, sub)
	dt.bound.Store(&binding{w: w, ssrc: 0xdeadbeef, pt: 100, levelID: 3})
	u.attach(dt)
	u.addSub(dt)
	return dt
}

// packetBuilder marshals synthetic packets into one reused buffer.
type packetBuilder struct {
	buf []byte
	pkt rtp.Packet
}

func (pb *packetBuilder) build(seq uint16, ts uint32, payload []byte, ext bool) []byte {
	pb.buf = pb.buf[:cap(pb.buf)]
	pb.pkt.Header = rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: ts, SSRC: 1234, Marker: true}
	if ext {
		_ = pb.pkt.Header.SetExtension(1, []byte{0x80 | 30})
	}
	pb.pkt.Payload = payload
	n, err := pb.pkt.MarshalTo(pb.buf)
	if err != nil {
		panic(err)
	}
	return pb.buf[:n]
}

// TestForwardNoAlloc asserts that the per-packet forwarding path (reader:
// parse, keyframe check, cache store, fan-out, enqueue; writer: dequeue,
// cache copy, layer choice, rewrite, write) allocates nothing.
func TestForwardNoAlloc(t *testing.T) {
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		t.Run(kind.String(), func(t *testing.T) {
			u := testUpTrack(kind, 1)
			var ws [3]countingWriter
			var dts []*DownTrack
			for i := range ws {
				dts = append(dts, testDownTrack(u, &ws[i]))
			}
			pb := &packetBuilder{buf: make([]byte, 1500)}
			key := vp8Payload(0, 0, true)
			delta := vp8Payload(0, 1, false)
			audio := audioPayload(7)
			var hdr rtp.Header
			seq := uint16(65000)
			pktBuf := make([]byte, 0, 1500)
			forward := func() {
				p := delta
				if seq == 65000 {
					p = key
				}
				if kind == webrtc.RTPCodecTypeAudio {
					p = audio
				}
				if seq <= 65001 {
					pb.build(seq, 0, p, kind == webrtc.RTPCodecTypeAudio)
					pktBuf = append(pktBuf[:0], pb.buf[:pb.pkt.MarshalSize()]...)
				}
				// Patch sequence number and timestamp in place: building
				// a packet with an extension allocates, forwarding must not.
				binary.BigEndian.PutUint16(pktBuf[2:], seq)
				binary.BigEndian.PutUint32(pktBuf[4:], uint32(seq)*3000)
				pkt := pktBuf
				seq++
				u.handlePacket(0, pkt, &hdr)
				for _, dt := range dts {
					dt.drain()
				}
			}
			forward() // first packet: keyframe, starts the downtracks
			allocs := testing.AllocsPerRun(1000, forward)
			if allocs != 0 {
				t.Fatalf("%.1f allocations per forwarded packet, want 0", allocs)
			}
			for i, w := range ws {
				if w.packets != 1002 {
					t.Errorf("writer %d: %d packets written, want 1002", i, w.packets)
				}
				if w.last.SSRC != 0xdeadbeef || w.last.PayloadType != 100 {
					t.Errorf("writer %d: header not rewritten: %+v", i, w.last)
				}
				audio := kind == webrtc.RTPCodecTypeAudio
				if w.last.Extension != audio || (audio && w.level != 0x80|30) {
					t.Errorf("writer %d: extension %v level %#x, want only the audio level renumbered", i, w.last.Extension, w.level)
				}
			}
			if st := u.stats.snapshot(); st.Drops != (DropStats{}) {
				t.Errorf("drops: %+v", st.Drops)
			}
		})
	}
}

// TestReceiveNoAlloc: a packet received from a publisher and forwarded
// allocates nothing in the bridge's receive path either: pion's NACK
// generator, receiver-report and TWCC interceptors used to allocate an
// attributes map and an RTP header for every received packet (3 per
// packet with one subscriber), which attrReuser removes. The figure is the
// whole process's (the pion clients' too) per forwarded packet, from
// BenchmarkForward/subs=1 run once; the allowance covers timers and
// keepalives during the run.
func TestReceiveNoAlloc(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (CI runs it with -race, which allocates on its own)")
	}
	res := testing.Benchmark(func(b *testing.B) {
		env := newForwardEnv(b, 1)
		defer env.close()
		env.run(b)
	})
	if got := res.Extra["allocs/fwd"]; got > 0.5 {
		t.Fatalf("%.2f allocations per forwarded packet with one subscriber (%d packets), want ~0", got, res.N)
	} else {
		t.Logf("%.3f allocations per forwarded packet over %d packets", got, res.N)
	}
}

// TestBridgeNACKsLostPackets: packets lost between a publisher and the
// bridge are asked for again (RTCP NACK from the bridge's NACK generator,
// which reads each packet's header through attrReuser).
func TestBridgeNACKsLostPackets(t *testing.T) {
	env := newForwardEnv(t, 1)
	defer env.close()
	lost := []uint16{env.seq + 10, env.seq + 20}
	payload := vp8Payload(2, 1, false)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		env.pub.mu.Lock()
		got := env.pub.nacked[lost[0]] && env.pub.nacked[lost[1]]
		env.pub.mu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bridge did not ask for the lost packets %v", lost)
		}
		env.seq++
		if env.seq == lost[0] || env.seq == lost[1] {
			continue // lost on the way
		}
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: env.seq, Timestamp: uint32(env.seq) * 3000, Marker: true}, Payload: payload}
		if err := env.pub.video[0].WriteRTP(&pkt); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSpeakerSeesBursts: a participant who speaks in bursts (160 ms of
// voice at -20 dBov, 80 ms of pause, 50 packets a second) takes the
// dominant speaker from a silent one. The room ticks at the end of each
// pause; the smoothed level at that instant is below speakerMin, so a
// detector that sampled only the instant level never switched. It uses
// the peak since the last tick.
func TestSpeakerSeesBursts(t *testing.T) {
	var got []string
	r := &Room{ev: RoomEvents{DominantSpeaker: func(p string) { got = append(got, p) }}, lastPackets: map[*UpTrack]uint64{}, speaker: "alice"}
	alice, bob := testUpTrack(webrtc.RTPCodecTypeAudio, 1), testUpTrack(webrtc.RTPCodecTypeAudio, 1)
	alice.info.Participant, bob.info.Participant = "alice", "bob"
	tracks := []*UpTrack{alice, bob}
	const voice, pause = 8, 4 // packets
	for tick := 0; tick < 10; tick++ {
		for i := 0; i < voice+pause; i++ {
			alice.noteLevel(0) // -127 dBov: silence
			alice.packets.Add(1)
			loud := int32(0)
			if i < voice {
				loud = (127 - 20) * 16
			}
			bob.noteLevel(loud)
			bob.packets.Add(1)
		}
		if lvl := bob.level.Load(); lvl >= speakerMin {
			t.Fatalf("tick %d: bob's instant level %d reaches speakerMin %d; the scenario does not test bursts", tick, lvl, speakerMin)
		}
		r.updateSpeaker(tracks)
	}
	if len(got) != 1 || got[0] != "bob" {
		t.Fatalf("dominant speaker changes %v, want [bob]", got)
	}
}

// notReadyWriter drops the first packets as pion's SRTP writer does before
// its session starts: 0 bytes written, no error.
type notReadyWriter struct {
	countingWriter
	drop int
}

func (w *notReadyWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	if w.drop > 0 {
		w.drop--
		return 0, nil
	}
	return w.countingWriter.WriteRTP(h, payload)
}

// TestKeyframeLostBeforeSRTP: a keyframe the SRTP writer dropped (its
// session not started yet) is not followed by delta frames the subscriber
// cannot decode: the downtrack waits for the next keyframe and asks the
// publisher for one.
func TestKeyframeLostBeforeSRTP(t *testing.T) {
	u := testUpTrack(webrtc.RTPCodecTypeVideo, 1)
	w := &notReadyWriter{drop: 1}
	dt := testDownTrack(u, w)
	pb := &packetBuilder{buf: make([]byte, 1500)}
	var hdr rtp.Header
	send := func(seq uint16, key bool) {
		u.handlePacket(0, append([]byte(nil), pb.build(seq, uint32(seq)*3000, vp8Payload(0, uint32(seq), key), false)...), &hdr)
		dt.drain()
	}
	send(100, true) // dropped by the writer
	if !u.layers[0].wantPLI.Load() {
		t.Fatal("no keyframe requested after the writer dropped the keyframe")
	}
	send(101, false)
	send(102, false)
	if w.packets != 0 {
		t.Fatalf("%d delta packets written after the lost keyframe, want none", w.packets)
	}
	send(103, true)
	send(104, false)
	if w.packets != 2 {
		t.Fatalf("%d packets written after the next keyframe, want 2", w.packets)
	}
}
