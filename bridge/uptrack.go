package bridge

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Packet flags stored with each cached packet and queued entry.
const (
	flagKeyframe uint8 = 1 << iota // first packet of a keyframe
	flagNACK                       // queue entry: retransmit the packet with this output seq
	flagResync                     // queue entry: resume after a drop, rebase seq/ts here
)

const (
	// maxLayers bounds the simulcast layers of one track.
	maxLayers = 4
	// videoCacheSlots holds ~0.5-1 s of a 2.5 Mb/s layer: enough for NACKs
	// (a NACK arrives one RTT after the loss) and for a writer lagging
	// behind by its whole queue.
	videoCacheSlots = 512
	// audioCacheSlots holds ~2.5 s of 20 ms Opus frames.
	audioCacheSlots = 128
	// keyframeInterval is the minimum time between two PLIs sent to a
	// publisher for one layer: a keyframe costs many packets, and one
	// answers every subscriber that asked meanwhile.
	keyframeInterval = 500 * time.Millisecond
	// layerIdle marks a simulcast layer inactive when no packet arrived for
	// this long (the publisher's encoder dropped it).
	layerIdle = time.Second
)

// UpTrack is one published track (publisher→SFU) with its simulcast layers.
// Each layer has one reader goroutine that stores every packet once in the
// layer's packet cache and offers it to every subscriber's DownTrack.
type UpTrack struct {
	info       TrackInfo                 // static after construction
	codec      webrtc.RTPCodecParameters // static after construction
	isKeyframe func([]byte) bool         // static; nil for audio
	isVP8      bool                      // static
	levelExtID uint8                     // static; RFC 6464 extension ID or 0
	layers     []*upLayer                // static after construction, low to high
	pub        *Participant              // static
	recv       *webrtc.RTPReceiver       // static
	stats      *counters                 // static
	now        *atomic.Int64             // static; coarse clock

	// subs is the immutable subscriber slice the readers fan out over;
	// rebuilt under mu and published atomically.
	subs atomic.Pointer[[]*DownTrack]

	// level is the smoothed RFC 6464 loudness (127 - dBov, times 16),
	// written by the reader; peak is its highest value since the speaker
	// detector last took it (Swap), so that a tick sees a burst of speech
	// that ended just before it, not only the level at that instant.
	level   atomic.Int32
	peak    atomic.Int32
	packets atomic.Uint64 // audio packets read; the speaker detector notices silence

	kfReq chan struct{} // capacity 1: wakes rtcpLoop to send PLIs
	done  chan struct{} // closed by close
	live  atomic.Int32  // running readers

	// mu guards the following fields.
	mu     sync.Mutex
	closed bool
	downs  map[*DownTrack]struct{} // every subscriber, bound or not
}

// upLayer is one simulcast layer (one RTP stream) of an UpTrack.
type upLayer struct {
	rid   string
	cache *packetCache
	ssrc  atomic.Uint32
	// height is the frame height read from the last VP8 keyframe, or 0.
	height atomic.Int32
	// bytes counts received bytes; bitrate is measured from it by the
	// room loop every tick.
	bytes     atomic.Uint64
	lastBytes uint64 // owned by the room loop
	bitrate   atomic.Int64
	// lastPacket is the coarse time of the last packet.
	lastPacket atomic.Int64
	// lastKF and newest are 1<<16 | sequence number of the first packet
	// of the last keyframe and of the newest packet stored; 0: none yet.
	// Written by the reader; read by keyframe replay.
	lastKF  atomic.Uint32
	newest  atomic.Uint32
	lastPLI atomic.Int64
	wantPLI atomic.Bool
	started bool // guarded by Participant.mu
}

// Info returns the track's description.
func (u *UpTrack) Info() TrackInfo { return u.info }

func newTrackID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// ridRank orders Chrome's conventional RIDs from low to high.
var ridRank = map[string]int{"q": 0, "h": 1, "f": 2}

// orderRIDs returns the RIDs low to high: q<h<f when every RID is one of
// those, otherwise in the order of the SDP (a=simulcast lists them in the
// sender's encoding order, which by the WebRTC convention goes from low to
// high).
func orderRIDs(rids []string) []string {
	out := append([]string(nil), rids...)
	known := true
	for _, r := range out {
		if _, ok := ridRank[r]; !ok {
			known = false
		}
	}
	if known {
		for i := 1; i < len(out); i++ {
			for j := i; j > 0 && ridRank[out[j]] < ridRank[out[j-1]]; j-- {
				out[j], out[j-1] = out[j-1], out[j]
			}
		}
	}
	if len(out) > maxLayers {
		out = out[:maxLayers]
	}
	return out
}

func newUpTrack(p *Participant, remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) *UpTrack {
	var rids []string
	for _, t := range recv.Tracks() {
		if t.RID() != "" {
			rids = append(rids, t.RID())
		}
	}
	if len(rids) == 0 {
		rids = []string{""}
	}
	rids = orderRIDs(rids)
	codec := remote.Codec()
	u := &UpTrack{
		info: TrackInfo{
			ID:          newTrackID(),
			Participant: p.id,
			Kind:        remote.Kind(),
			Simulcast:   len(rids) > 1,
		},
		codec:      codec,
		isKeyframe: keyframeFunc(codec.MimeType),
		isVP8:      strings.EqualFold(codec.MimeType, webrtc.MimeTypeVP8),
		pub:        p,
		recv:       recv,
		stats:      &p.room.b.stats,
		now:        &p.room.b.now,
		kfReq:      make(chan struct{}, 1),
		done:       make(chan struct{}),
		downs:      map[*DownTrack]struct{}{},
	}
	if remote.Kind() == webrtc.RTPCodecTypeAudio {
		for _, e := range recv.GetParameters().HeaderExtensions {
			if e.URI == audioLevelURI && e.ID > 0 && e.ID < 15 {
				u.levelExtID = uint8(e.ID)
			}
		}
	}
	for i, rid := range rids {
		slots := audioCacheSlots
		switch {
		case remote.Kind() != webrtc.RTPCodecTypeVideo:
		case i == len(rids)-1:
			slots = videoCacheSlots
		default:
			// Lower layers send fewer packets: half the slots hold as
			// much time.
			slots = videoCacheSlots / 2
		}
		u.layers = append(u.layers, &upLayer{rid: rid, cache: newPacketCache(slots)})
	}
	return u
}

// layerIndex returns the index of the layer with the given RID, or -1.
func (u *UpTrack) layerIndex(rid string) int {
	for i, l := range u.layers {
		if l.rid == rid {
			return i
		}
	}
	return -1
}

// readLoop reads one layer until the track ends. It owns buf and hdr.
// Run by the publisher's wait group.
func (u *UpTrack) readLoop(li int, remote *webrtc.TrackRemote) {
	defer u.pub.wg.Done()
	defer func() {
		if u.live.Add(-1) == 0 {
			u.close()
		}
	}()
	u.layers[li].ssrc.Store(uint32(remote.SSRC()))
	buf := make([]byte, slotSize+64)
	var hdr rtp.Header
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			return
		}
		u.handlePacket(li, buf[:n], &hdr)
	}
}

// handlePacket is the per-packet path of a publisher: parse, detect
// keyframes and audio level, store once, fan out. It allocates nothing and
// takes no lock but the cache's.
func (u *UpTrack) handlePacket(li int, pkt []byte, hdr *rtp.Header) {
	u.stats.received.Add(1)
	hl, err := hdr.Unmarshal(pkt)
	if err != nil || hl > len(pkt) {
		u.stats.dropMalformed.Add(1)
		return
	}
	l := u.layers[li]
	l.bytes.Add(uint64(len(pkt)))
	l.lastPacket.Store(u.now.Load())
	payload := pkt[hl:]
	if hdr.Padding && len(payload) > 0 {
		// Keyframe detection looks at the media payload only: a
		// padding-only probe packet must not look like a frame start.
		if pad := int(payload[len(payload)-1]); pad <= len(payload) {
			payload = payload[:len(payload)-pad]
		}
	}
	var flags uint8
	if u.isKeyframe != nil && len(payload) > 0 && u.isKeyframe(payload) {
		flags |= flagKeyframe
		if u.isVP8 {
			if h := vp8Height(payload); h > 0 {
				l.height.Store(int32(h))
			}
		}
	}
	if u.levelExtID != 0 {
		if e := hdr.GetExtension(u.levelExtID); len(e) > 0 {
			u.noteLevel(int32(127-e[0]&0x7f) * 16)
		}
		u.packets.Add(1)
	}
	seq := hdr.SequenceNumber
	if !l.cache.store(seq, pkt, flags) {
		u.stats.dropTooBig.Add(1)
		return
	}
	if flags&flagKeyframe != 0 {
		l.lastKF.Store(1<<16 | uint32(seq))
	}
	if old := l.newest.Load(); old == 0 || int16(seq-uint16(old)) > 0 {
		l.newest.Store(1<<16 | uint32(seq))
	}
	subs := u.subs.Load()
	if subs == nil {
		return
	}
	for _, dt := range *subs {
		dt.enqueue(uint8(li), seq, flags)
	}
}

// attach records a new subscriber; it joins the fan-out once bound.
func (u *UpTrack) attach(dt *DownTrack) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.downs[dt] = struct{}{}
	return true
}

// addSub adds an attached dt to the fan-out.
func (u *UpTrack) addSub(dt *DownTrack) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.downs[dt]; !ok || u.closed {
		return false
	}
	var next []*DownTrack
	if old := u.subs.Load(); old != nil {
		for _, d := range *old {
			if d == dt {
				return true
			}
		}
		next = append(next, *old...)
	}
	next = append(next, dt)
	u.subs.Store(&next)
	return true
}

// removeSub removes dt from the fan-out.
func (u *UpTrack) removeSub(dt *DownTrack) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.downs, dt)
	old := u.subs.Load()
	if old == nil {
		return
	}
	next := make([]*DownTrack, 0, len(*old))
	for _, d := range *old {
		if d != dt {
			next = append(next, d)
		}
	}
	u.subs.Store(&next)
}

func (u *UpTrack) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

// close unpublishes the track: it leaves the room, every subscriber drops
// its DownTrack, rtcpLoop ends. Idempotent; the readers end when the
// publisher's PeerConnection closes or the remote track ends.
func (u *UpTrack) close() {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed = true
	subs := make([]*DownTrack, 0, len(u.downs))
	for dt := range u.downs {
		subs = append(subs, dt)
	}
	u.subs.Store(nil)
	close(u.done)
	u.mu.Unlock()

	u.pub.room.removeTrack(u)
	u.pub.forgetUpTrack(u)
	for _, dt := range subs {
		dt.sub.removeDownTrack(dt)
	}
}

// requestKeyframe asks the publisher for a keyframe on layer li, at most
// once per keyframeInterval per layer. Never blocks.
func (u *UpTrack) requestKeyframe(li int) {
	if u.isKeyframe == nil || li < 0 || li >= len(u.layers) {
		return
	}
	l := u.layers[li]
	now := u.now.Load()
	last := l.lastPLI.Load()
	if last != 0 && now-last < int64(keyframeInterval) {
		return
	}
	if !l.lastPLI.CompareAndSwap(last, now) {
		return
	}
	l.wantPLI.Store(true)
	select {
	case u.kfReq <- struct{}{}:
	default:
	}
}

// rtcpLoop sends the PLIs asked for by requestKeyframe, off the packet path.
// Run by the publisher's wait group.
func (u *UpTrack) rtcpLoop() {
	defer u.pub.wg.Done()
	for {
		select {
		case <-u.done:
			return
		case <-u.kfReq:
		}
		for _, l := range u.layers {
			if !l.wantPLI.Swap(false) {
				continue
			}
			ssrc := l.ssrc.Load()
			if ssrc == 0 {
				continue
			}
			u.stats.keyframeRequests.Add(1)
			_ = u.pub.pubPC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		}
	}
}

// layerActive reports whether layer li received a packet recently.
func (u *UpTrack) layerActive(li int) bool {
	l := u.layers[li]
	last := l.lastPacket.Load()
	return last != 0 && u.now.Load()-last < int64(layerIdle)
}

// layerHeight returns the frame height of layer li: from its last VP8
// keyframe if known, otherwise the nominal 720p/360p/180p ladder that
// Chrome's three-layer simulcast uses (top layer 720, each lower one half).
func (u *UpTrack) layerHeight(li int) int {
	if h := u.layers[li].height.Load(); h > 0 {
		return int(h)
	}
	return 720 >> (len(u.layers) - 1 - li)
}

// noteLevel smooths one packet's loudness into level (an exponential
// average over about 8 packets, 160 ms of Opus) and raises peak. The reader
// is the only writer of level; a peak raised just as the detector swaps it
// out lands in the next tick.
func (u *UpTrack) noteLevel(loud int32) {
	old := u.level.Load()
	lvl := old + (loud-old)/8
	u.level.Store(lvl)
	if lvl > u.peak.Load() {
		u.peak.Store(lvl)
	}
}
