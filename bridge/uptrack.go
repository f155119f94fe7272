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

// UpTrack is one published track with its simulcast layers, whatever feeds
// it: a participant's PeerConnection (one reader goroutine per layer) or
// Room.Publish (Publication.WriteRTP). Every packet goes through
// handlePacket, which stores it once in the layer's packet cache and offers
// it to every subscriber (DownTrack). What the track needs from where its
// packets come from (keyframes, retransmissions, the demand) goes to its
// TrackSource from the control goroutine, rtcpLoop.
type UpTrack struct {
	info       TrackInfo                 // static after construction
	codec      webrtc.RTPCodecParameters // static after construction
	isKeyframe func([]byte) bool         // static; nil for audio
	isVP8      bool                      // static
	levelExtID uint8                     // static; RFC 6464 extension ID or 0
	layers     []*upLayer                // static after construction, low to high
	room       *Room                     // static
	pub        *Participant              // static; nil for a track fed through Publish
	recv       *webrtc.RTPReceiver       // static; nil for a track fed through Publish
	src        TrackSource               // static; called by rtcpLoop only
	wg         *sync.WaitGroup           // static; the owner's: counts rtcpLoop (and pion readers)
	stats      *counters                 // static
	now        *clock                    // static
	// gaps: losses are detected from sequence gaps and asked of src
	// (tracks fed through Publish; a pion track has the NACK interceptor).
	gaps bool // static

	// subs is the immutable subscriber slice handlePacket fans out over;
	// rebuilt under mu and published atomically.
	subs atomic.Pointer[[]*DownTrack]

	// level is the smoothed RFC 6464 loudness (127 - dBov, times 16),
	// written by the reader; peak is its highest value since the speaker
	// detector last took it (Swap), so that a tick sees a burst of speech
	// that ended just before it, not only the level at that instant.
	level   atomic.Int32
	peak    atomic.Int32
	packets atomic.Uint64 // audio packets read; the speaker detector notices silence

	wake        chan struct{} // capacity 1: wakes rtcpLoop
	demandDirty atomic.Bool   // a subscriber's layer changed: rtcpLoop recomputes the demand
	done        chan struct{} // closed by close
	ctlDone     chan struct{} // closed when rtcpLoop returns
	ended       atomic.Bool   // set by close
	live        atomic.Int32  // running pion readers

	// mu guards the following fields.
	mu     sync.Mutex
	closed bool
	downs  map[*DownTrack]struct{} // every subscriber, bound or not
}

// upLayer is one simulcast layer (one RTP stream) of an UpTrack.
type upLayer struct {
	rid   string // static
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
	lastKF atomic.Uint32
	// lastKFAt is the coarse time lastKF arrived, stored after lastKF
	// (replay loads it first: a keyframe moved meanwhile looks older,
	// never younger, than it is). Keyframe replay refuses an old one.
	lastKFAt atomic.Int64
	newest   atomic.Uint32
	lastPLI  atomic.Int64
	wantPLI  atomic.Bool
	started  bool // guarded by Participant.mu
	// What the source declared (Publish, SetLayerInfo): used by layer
	// choice for a layer not flowing into this bridge.
	declHeight   atomic.Int32
	declBitrate  atomic.Int64
	declInactive atomic.Bool
	// nacks are the sequence numbers missing from the cache (gaps only).
	nacks nackList
}

// declare records what a source says about the layer.
func (l *upLayer) declare(info LayerInfo) {
	l.declHeight.Store(int32(min(max(info.Height, 0), 1<<15)))
	l.declBitrate.Store(max(info.Bitrate, 0))
	l.declInactive.Store(info.Inactive)
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

// newTrack builds a track of the given layers (low to high; at least
// one) with its packet caches; the caller sets the source fields.
func newTrack(r *Room, info TrackInfo, codec webrtc.RTPCodecParameters, layers []LayerInfo, stats *counters, now *clock) *UpTrack {
	info.Simulcast = len(layers) > 1
	u := &UpTrack{
		info:       info,
		codec:      codec,
		isKeyframe: keyframeFunc(codec.MimeType),
		isVP8:      strings.EqualFold(codec.MimeType, webrtc.MimeTypeVP8),
		room:       r,
		stats:      stats,
		now:        now,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		ctlDone:    make(chan struct{}),
		downs:      map[*DownTrack]struct{}{},
	}
	if info.Kind != webrtc.RTPCodecTypeVideo {
		u.isKeyframe = nil
	}
	for i, li := range layers {
		slots := audioCacheSlots
		switch {
		case info.Kind != webrtc.RTPCodecTypeVideo:
		case i == len(layers)-1:
			slots = videoCacheSlots
		default:
			// Lower layers send fewer packets: half the slots hold as
			// much time.
			slots = videoCacheSlots / 2
		}
		l := &upLayer{rid: li.RID, cache: newPacketCache(slots)}
		l.declare(li)
		u.layers = append(u.layers, l)
	}
	return u
}

// newUpTrack builds the track of a participant's pion receiver.
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
	layers := make([]LayerInfo, len(rids))
	for i, rid := range rids {
		layers[i].RID = rid
	}
	info := TrackInfo{ID: newTrackID(), Participant: p.id, Kind: remote.Kind()}
	u := newTrack(p.room, info, remote.Codec(), layers, &p.room.b.stats, &p.room.b.now)
	u.pub = p
	u.recv = recv
	u.src = pionSource{u}
	u.wg = &p.wg
	if remote.Kind() == webrtc.RTPCodecTypeAudio {
		for _, e := range recv.GetParameters().HeaderExtensions {
			if e.URI == audioLevelURI && e.ID > 0 && e.ID < 15 {
				u.levelExtID = uint8(e.ID)
			}
		}
	}
	return u
}

// newRemoteTrack builds a track fed through Room.Publish; params are
// validated.
func newRemoteTrack(r *Room, params PublishParams, src TrackSource) *UpTrack {
	layers := params.Layers
	if len(layers) == 0 {
		layers = []LayerInfo{{}}
	}
	info := TrackInfo{ID: params.TrackID, Participant: params.Participant, Kind: params.Kind, Remote: true, E2EE: params.E2EE}
	u := newTrack(r, info, params.Codec, layers, &r.b.stats, &r.b.now)
	u.src = src
	u.wg = &r.wg
	u.gaps = true
	if params.Kind == webrtc.RTPCodecTypeAudio {
		u.levelExtID = params.AudioLevelID
	}
	return u
}

// params describes the track as Room.Publish takes it, with each layer's
// current height, bitrate and activity.
func (u *UpTrack) params() PublishParams {
	p := PublishParams{
		TrackID:      u.info.ID,
		Participant:  u.info.Participant,
		Kind:         u.info.Kind,
		Codec:        u.codec,
		AudioLevelID: u.levelExtID,
		Layers:       make([]LayerInfo, len(u.layers)),
		E2EE:         u.info.E2EE,
	}
	for i, l := range u.layers {
		h := int(l.height.Load())
		if h == 0 {
			h = int(l.declHeight.Load())
		}
		// A simulcast layer that is not flowing now is inactive, also
		// one that never sent yet: a browser starts its upper layers only
		// as its bandwidth estimate grows, seconds after the first, and a
		// far bridge that took them as active would hold its subscribers
		// on a layer with no media until then. The relay tells far
		// bridges when a layer starts or stops (TrackLayers).
		inactive := len(u.layers) > 1 && !u.layerActive(i)
		p.Layers[i] = LayerInfo{RID: l.rid, Height: h, Bitrate: u.layerBitrate(i), Inactive: inactive}
	}
	if u.info.Kind != webrtc.RTPCodecTypeVideo {
		p.Layers[0].Height = 0
	}
	return p
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
	defer u.wg.Done()
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

// handlePacket is the per-packet path of every track, whether a pion
// reader or Publication.WriteRTP feeds it: parse, detect keyframes and
// audio level, detect gaps (tracks fed through Publish), store once, fan
// out. It allocates nothing. It takes the layer cache's lock to store, the
// layer's NACK list lock when a packet arrives out of order on a track that
// detects gaps, and, through enqueue, each subscriber's queue lock in turn;
// never a lock held while writing to the network.
func (u *UpTrack) handlePacket(li int, pkt []byte, hdr *rtp.Header) {
	u.stats.received.Add(1)
	hl, err := hdr.Unmarshal(pkt)
	if err != nil || hl > len(pkt) {
		u.stats.dropMalformed.Add(1)
		return
	}
	l := u.layers[li]
	now := u.now.Load()
	prev := l.lastPacket.Swap(now)
	l.bytes.Add(uint64(len(pkt)))
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
	if u.gaps {
		if prev != 0 && now-prev > int64(layerIdle) {
			// The layer was not fed for a while (nobody here wanted
			// it): start afresh instead of asking for what passed.
			l.newest.Store(0)
			l.lastKF.Store(0)
			l.nacks.reset()
		}
		u.checkGap(li, l, seq)
	}
	if !l.cache.store(seq, pkt, flags) {
		u.stats.dropTooBig.Add(1)
		return
	}
	newest := l.newest.Load()
	if newest == 0 || int16(seq-uint16(newest)) > 0 {
		l.newest.Store(1<<16 | uint32(seq))
	}
	if flags&flagKeyframe != 0 {
		// A retransmitted packet of an older keyframe does not move it
		// back.
		if kf := l.lastKF.Load(); kf == 0 || int16(seq-uint16(kf)) > 0 {
			l.lastKF.Store(1<<16 | uint32(seq))
			l.lastKFAt.Store(now)
		}
	}
	subs := u.subs.Load()
	if subs == nil {
		return
	}
	for _, dt := range *subs {
		dt.enqueue(uint8(li), seq, flags)
	}
}

// checkGap notes the sequence numbers between the newest packet and seq as
// missing, or a late one as found. A gap wider than maxNACKGap is not
// asked for packet by packet: a keyframe is.
func (u *UpTrack) checkGap(li int, l *upLayer, seq uint16) {
	newest := l.newest.Load()
	if newest == 0 {
		return
	}
	d := int16(seq - uint16(newest))
	switch {
	case d > maxNACKGap+1:
		u.stats.lossUnrepaired.Add(uint64(d - 1))
		u.requestKeyframe(li)
	case d > 1:
		if over := l.nacks.add(uint16(newest)+1, seq); over > 0 {
			u.stats.lossUnrepaired.Add(uint64(over))
		}
		u.wakeControl()
	case d < 0:
		l.nacks.remove(seq)
	}
}

// attach records a new subscriber; it joins the fan-out once bound.
func (u *UpTrack) attach(dt *DownTrack) bool {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return false
	}
	u.downs[dt] = struct{}{}
	u.mu.Unlock()
	u.demandChanged()
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
	delete(u.downs, dt)
	old := u.subs.Load()
	if old != nil {
		next := make([]*DownTrack, 0, len(*old))
		for _, d := range *old {
			if d != dt {
				next = append(next, d)
			}
		}
		u.subs.Store(&next)
	}
	u.mu.Unlock()
	u.demandChanged()
}

func (u *UpTrack) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

// close unpublishes the track: it leaves the room, every subscriber drops
// it, rtcpLoop ends. Idempotent; the pion readers end when the publisher's
// PeerConnection closes or the remote track ends.
func (u *UpTrack) close() {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return
	}
	u.closed = true
	u.ended.Store(true)
	subs := make([]*DownTrack, 0, len(u.downs))
	for dt := range u.downs {
		subs = append(subs, dt)
	}
	u.subs.Store(nil)
	close(u.done)
	u.mu.Unlock()

	u.room.removeTrack(u)
	if u.pub != nil {
		u.pub.forgetUpTrack(u)
	}
	for _, dt := range subs {
		dt.detach()
	}
}

// requestKeyframe asks the source for a keyframe on layer li, at most once
// per keyframeInterval per layer. Never blocks.
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
	u.wakeControl()
}

// demandChanged makes rtcpLoop recompute the demand: a subscriber came,
// went or changed layer. Never blocks; allocates nothing.
func (u *UpTrack) demandChanged() {
	u.demandDirty.Store(true)
	u.wakeControl()
}

func (u *UpTrack) wakeControl() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// demand is the set of layers the subscribers target or still receive
// while they wait for the target's keyframe.
func (u *UpTrack) demand() Demand {
	u.mu.Lock()
	defer u.mu.Unlock()
	var d Demand
	for dt := range u.downs {
		if t := dt.target.Load(); t >= 0 {
			d |= 1 << t
		}
		if c := dt.cur.Load(); c >= 0 {
			d |= 1 << c
		}
	}
	return d
}

// rtcpLoop is the track's control goroutine: it passes keyframe requests,
// retransmission requests and demand changes to the source, off the packet
// path (for a pion track: RTCP to the publisher). Run by the owner's wait
// group (the publisher's, or the room's for a track fed through Publish).
func (u *UpTrack) rtcpLoop() {
	defer u.wg.Done()
	defer close(u.ctlDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	seqs := make([]uint16, 0, maxMissing)
	var sent Demand // none until told otherwise
	for {
		select {
		case <-u.done:
			return
		case <-u.wake:
		case <-timer.C:
		}
		// Keyframe requests go after the demand that their cause
		// changed: a subscriber resuming a layer nobody here wanted
		// raises the demand (demandDirty) before it asks (wantPLI),
		// and a relay source's peer ignores a keyframe request for a
		// layer it is not asked to send yet. So the requests are taken
		// first and sent after the demand.
		var kf uint8
		for li, l := range u.layers {
			if l.wantPLI.Swap(false) {
				kf |= 1 << li
			}
		}
		if u.demandDirty.Swap(false) {
			if d := u.demand(); d != sent {
				sent = d
				u.src.SetDemand(d)
			}
		}
		for li := range u.layers {
			if kf&(1<<li) != 0 {
				u.stats.keyframeRequests.Add(1)
				u.src.RequestKeyframe(li)
			}
		}
		if !u.gaps {
			continue
		}
		pending := false
		now := time.Now().UnixNano()
		for li, l := range u.layers {
			var more bool
			var gaveUp int
			seqs, more, gaveUp = l.nacks.due(seqs[:0], now)
			if gaveUp > 0 {
				u.stats.lossUnrepaired.Add(uint64(gaveUp))
			}
			if len(seqs) > 0 {
				u.stats.retransmitRequests.Add(uint64(len(seqs)))
				u.src.RequestRetransmit(li, seqs)
			}
			pending = pending || more
		}
		if pending {
			timer.Reset(nackRetry)
		}
	}
}

// pionSource is the TrackSource of a participant's track: RTCP to the
// publisher on its PeerConnection.
type pionSource struct{ u *UpTrack }

// RequestKeyframe sends a PLI for the layer's SSRC.
func (s pionSource) RequestKeyframe(li int) {
	ssrc := s.u.layers[li].ssrc.Load()
	if ssrc == 0 {
		return
	}
	_ = s.u.pub.pubPC.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
}

// RequestRetransmit sends a generic NACK. Unused today: pion's NACK
// interceptor watches a participant's streams itself.
func (s pionSource) RequestRetransmit(li int, seqs []uint16) {
	ssrc := s.u.layers[li].ssrc.Load()
	if ssrc == 0 || len(seqs) == 0 {
		return
	}
	_ = s.u.pub.pubPC.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: rtcp.NackPairsFromSequenceNumbers(seqs)}})
}

// SetDemand does nothing: a browser sends every layer it encodes.
func (pionSource) SetDemand(Demand) {}

// layerActive reports whether layer li is usable: it received a packet
// recently, or (a track fed through Publish) its source declares it
// active, so that a subscriber may target a layer nobody here fetched yet.
func (u *UpTrack) layerActive(li int) bool {
	l := u.layers[li]
	last := l.lastPacket.Load()
	if last != 0 && u.now.Load()-last < int64(layerIdle) {
		return true
	}
	return u.gaps && !l.declInactive.Load()
}

// layerHeight returns the frame height of layer li: from its last VP8
// keyframe if known, else as declared by the source, otherwise the nominal
// 720p/360p/180p ladder that Chrome's three-layer simulcast uses (top layer
// 720, each lower one half).
func (u *UpTrack) layerHeight(li int) int {
	if h := u.layers[li].height.Load(); h > 0 {
		return int(h)
	}
	if h := u.layers[li].declHeight.Load(); h > 0 {
		return int(h)
	}
	return 720 >> (len(u.layers) - 1 - li)
}

// layerBitrate returns the bitrate of layer li in bits/s: as measured
// here, or as declared by the source when that is higher (a layer that
// does not flow here, or only just started).
func (u *UpTrack) layerBitrate(li int) int64 {
	l := u.layers[li]
	return max(l.bitrate.Load(), l.declBitrate.Load())
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
