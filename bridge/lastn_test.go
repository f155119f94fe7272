package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// lastNRoom is a room with n far participants, each publishing (through
// Publish, the relay's way in) one video track "v<i>" and one audio track
// "a<i>" with RFC 6464 levels, and one subscriber here that receives every
// video track.
type lastNRoom struct {
	r      *Room
	sub    *Participant
	video  []*Publication
	audio  []*Publication
	vsrc   []*recSource
	seq    []uint16
	tracks []*UpTrack
}

func newLastNRoom(t *testing.T, n, lastN int) *lastNRoom {
	t.Helper()
	b := unstartedBridge(t)
	lr := &lastNRoom{r: b.NewRoom("lastn", RoomEvents{}), seq: make([]uint16, n)}
	t.Cleanup(lr.r.Close)
	lr.r.SetLastN(lastN)
	lr.r.lastPackets = map[*UpTrack]uint64{}
	// The test runs the loop's steps itself (tick): keep the room from
	// starting its own loop goroutine.
	lr.r.mu.Lock()
	lr.r.loop = true
	lr.r.mu.Unlock()
	lr.sub = &Participant{id: "sub", room: lr.r, downtracks: map[string]*DownTrack{}}
	lr.sub.subReady.Store(true)
	for i := 0; i < n; i++ {
		vp := vp8Params(fmt.Sprintf("v%d", i), 1)
		vp.Participant = fmt.Sprintf("p%d", i)
		src := newRecSource()
		pub, err := lr.r.Publish(vp, src)
		if err != nil {
			t.Fatal(err)
		}
		ap := PublishParams{
			TrackID: fmt.Sprintf("a%d", i), Participant: vp.Participant, Kind: webrtc.RTPCodecTypeAudio,
			Codec:        webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000}, PayloadType: 111},
			AudioLevelID: 1,
		}
		apub, err := lr.r.Publish(ap, newRecSource())
		if err != nil {
			t.Fatal(err)
		}
		lr.video = append(lr.video, pub)
		lr.audio = append(lr.audio, apub)
		lr.vsrc = append(lr.vsrc, src)
		lr.tracks = append(lr.tracks, pub.up, apub.up)
		var w countingWriter
		dt := newDownTrack(pub.up, lr.sub)
		dt.bound.Store(&binding{w: &w, ssrc: 0xdeadbeef, pt: 96})
		pub.up.attach(dt)
		pub.up.addSub(dt)
		dt.selectLayer(0)
		lr.sub.downtracks[vp.TrackID] = dt
	}
	// The subscriber has no PeerConnection: take its downtracks off their
	// tracks before the room closes (cleanups run last first).
	t.Cleanup(func() {
		for _, dt := range lr.sub.downtracks {
			dt.up.removeSub(dt)
			dt.up.mu.Lock()
			delete(dt.up.downs, dt)
			dt.up.mu.Unlock()
			dt.stop()
		}
	})
	return lr
}

// speak sends one audio packet of participant i at -dbov dBov.
func (lr *lastNRoom) speak(t *testing.T, i int, dbov uint8) {
	t.Helper()
	lr.seq[i]++
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: lr.seq[i], Timestamp: uint32(lr.seq[i]) * 960, SSRC: 77}, Payload: []byte{1, 2, 3}}
	if err := pkt.Header.SetExtension(1, []byte{0x80 | dbov}); err != nil {
		t.Fatal(err)
	}
	buf, err := pkt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	lr.audio[i].WriteRTP(0, buf)
}

// tick runs the room loop's speaker and last-N steps once.
func (lr *lastNRoom) tick() {
	lr.r.updateSpeaker(lr.tracks)
	lr.r.applyLastN([]*Participant{lr.sub}, lr.tracks)
}

// forwarded lists the participants whose video the subscriber receives
// (layer target set).
func (lr *lastNRoom) forwarded() map[string]bool {
	got := map[string]bool{}
	for _, dt := range lr.sub.downtracks {
		if dt.target.Load() >= 0 {
			got[dt.up.info.Participant] = true
		}
	}
	return got
}

func sameSet(got map[string]bool, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if !got[w] {
			return false
		}
	}
	return true
}

// TestLastNVideo: with more video publishers than N, a subscriber gets the
// video of the N most recent speakers plus its pin; the others are paused
// and their upstream demand falls to nothing (the relay stops carrying
// them); a new speaker moves the set and its video is asked for a keyframe.
func TestLastNVideo(t *testing.T) {
	lr := newLastNRoom(t, 5, 2)
	lr.tick()
	// Nobody spoke yet: the first N in a stable order.
	if got := lr.forwarded(); !sameSet(got, "p0", "p1") {
		t.Fatalf("before anyone spoke: video of %v, want p0 p1", got)
	}
	for i := 2; i < 5; i++ {
		src := lr.vsrc[i]
		eventually(t, 5*time.Second, "no demand for a track outside last-N", func() bool { return src.demand() == 0 })
	}
	// p3 then p4 speak (p4 last): they are the two most recent speakers.
	for k := 0; k < 20; k++ {
		lr.speak(t, 3, 20)
	}
	lr.tick()
	for k := 0; k < 20; k++ {
		lr.speak(t, 4, 20)
	}
	lr.tick()
	if got := lr.forwarded(); !sameSet(got, "p3", "p4") {
		t.Fatalf("after p3 then p4 spoke: video of %v, want p3 p4", got)
	}
	for _, i := range []int{3, 4} {
		src := lr.vsrc[i]
		eventually(t, 5*time.Second, "demand for a newly included track", func() bool { return src.demand() != 0 })
		// The track's control loop may send the new demand in one turn
		// and the keyframe request, asked a moment later, in the next.
		eventually(t, 5*time.Second, fmt.Sprintf("p%d entered last-N with a keyframe request", i), func() bool { return len(src.keyframesAsked()) > 0 })
	}
	for _, i := range []int{0, 1} {
		src := lr.vsrc[i]
		eventually(t, 5*time.Second, "demand gone for a track that left last-N", func() bool { return src.demand() == 0 })
	}
	// p0 speaks: p4 and p0 remain, p3 (least recent) leaves.
	for k := 0; k < 20; k++ {
		lr.speak(t, 0, 20)
	}
	lr.tick()
	if got := lr.forwarded(); !sameSet(got, "p0", "p4") {
		t.Fatalf("after p0 spoke: video of %v, want p0 p4", got)
	}
	// A pin keeps p2 whatever last-N says; unpinning pauses it again.
	lr.sub.Pin("v2", true)
	lr.tick()
	if got := lr.forwarded(); !sameSet(got, "p0", "p2", "p4") {
		t.Fatalf("with v2 pinned: video of %v, want p0 p2 p4", got)
	}
	lr.sub.Pin("v2", false)
	if got := lr.forwarded(); !sameSet(got, "p0", "p4") {
		t.Fatalf("v2 unpinned: video of %v, want p0 p4", got)
	}
}

// TestLastNSmallRoom: at most N video publishers, everything is forwarded
// (last-N changes nothing in a small meeting).
func TestLastNSmallRoom(t *testing.T) {
	lr := newLastNRoom(t, 3, 3)
	lr.speak(t, 2, 20)
	lr.tick()
	if got := lr.forwarded(); !sameSet(got, "p0", "p1", "p2") {
		t.Fatalf("3 publishers, N=3: video of %v, want all", got)
	}
}

// TestLastNAudio: above AudioLastNMin audio publishers a subscriber hears
// only the AudioLastN most recent speakers; the others' packets are not
// queued for it (enqueue is synchronous with Publication.WriteRTP).
func TestLastNAudio(t *testing.T) {
	n := AudioLastNMin + 2
	lr := newLastNRoom(t, n, -1)
	dts := make([]*DownTrack, n)
	for i, pub := range lr.audio {
		var w countingWriter
		dt := newDownTrack(pub.up, lr.sub)
		dt.bound.Store(&binding{w: &w, ssrc: 0xbeef, pt: 111})
		pub.up.attach(dt)
		pub.up.addSub(dt)
		lr.sub.downtracks[pub.up.info.ID] = dt
		dts[i] = dt
	}
	talkers := []int{1, 4, 7, 9, 12, 15, 20} // more than AudioLastN; 20 last
	for _, i := range talkers {
		for k := 0; k < 20; k++ {
			lr.speak(t, i, 20)
		}
		lr.tick()
	}
	queued := func(dt *DownTrack) int {
		dt.qmu.Lock()
		defer dt.qmu.Unlock()
		return dt.qLen
	}
	for _, dt := range dts {
		dt.qmu.Lock()
		dt.qHead, dt.qLen = 0, 0
		dt.qmu.Unlock()
	}
	for i := 0; i < n; i++ {
		lr.speak(t, i, 20)
	}
	in := map[int]bool{}
	for _, i := range talkers[len(talkers)-AudioLastN:] {
		in[i] = true
	}
	for i, dt := range dts {
		if got := queued(dt); in[i] && got != 1 {
			t.Fatalf("participant %d is among the %d most recent speakers: %d packets queued, want 1", i, AudioLastN, got)
		} else if !in[i] && got != 0 {
			t.Fatalf("participant %d is not among the %d most recent speakers: %d packets queued, want 0", i, AudioLastN, got)
		}
	}
	// Pinned audio is heard whatever last-N says.
	lr.sub.Pin("a0", true)
	lr.speak(t, 0, 20)
	if got := queued(dts[0]); got != 1 {
		t.Fatalf("pinned audio: %d packets queued, want 1", got)
	}
}
