package bridge

// This file is the seam between the bridge and whatever else carries media
// into or out of a room besides pion: the relay (bridge-to-bridge cascade).
//
// A room holds tracks (UpTrack) and their subscribers (DownTrack). A track
// gets its packets from a source: a participant's pion PeerConnection (one
// reader goroutine per simulcast layer) or, through Room.Publish, anything
// that calls Publication.WriteRTP. Both feed one per-packet path
// (UpTrack.handlePacket): parse, keyframe and audio-level detection, store
// once in the layer's packet cache, offer to every subscriber. A subscriber
// is a participant's pion track (DownTrack, which rewrites SSRC, sequence
// numbers and timestamps into one continuous stream) or, through
// Room.Subscribe, a TrackSink that receives the packets of one layer as the
// publisher sent them. Both have the same bounded queue, writer goroutine,
// switch-at-keyframe layer logic and drop counters.
//
// The source of a track is asked for keyframes and retransmissions and told
// which layers its subscribers want (TrackSource). For a pion track that is
// RTCP to the browser (PLI; NACKs come from pion's NACK interceptor); for a
// relay track it is a message upstream. Losses on a track fed through
// Publish are detected from sequence gaps in its packet cache and asked for
// again through TrackSource.RequestRetransmit.
//
// Protocol flow of a cascade hop, bridge A (holds the publisher) to bridge B
// (holds subscribers):
//
//	A: TrackPublished(info, Remote=false) ──relay──▶ B: Room.Publish(params, src)
//	B: src.SetDemand({2})                  ──relay──▶ A: Room.Subscribe(id, 2, sink)
//	A: sink.WriteRTP(2, pkt)               ──relay──▶ B: Publication.WriteRTP(2, pkt)
//	B: src.RequestRetransmit(2, seqs)      ──relay──▶ A: Subscription.Retransmit(2, seqs)
//	B: src.RequestKeyframe(2)              ──relay──▶ A: Subscription.RequestKeyframe()
//	B: src.SetDemand({})                   ──relay──▶ A: Subscription.Close()
//
// B's TrackPublished reports the track with Remote=true: the relay must not
// export it again (loop prevention).

import (
	"math/bits"
	"strings"
	"sync"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// TrackSource is the origin of the packets of a track published with
// Room.Publish: for the relay, the link to the bridge that holds the
// publisher. The bridge calls it from the track's control goroutine, never
// from the packet path, one call at a time. No method may block: queue the
// request and return. The bridge rate-limits keyframe requests (one per
// layer per 500 ms) and retransmission requests (each sequence number at
// most nackTries times, nackRetry apart).
type TrackSource interface {
	// RequestKeyframe asks for a keyframe on layer (0 for a track without
	// simulcast).
	RequestKeyframe(layer int)
	// RequestRetransmit asks again for the packets of layer with the given
	// sequence numbers, which are missing from the track's packet cache.
	// seqs is valid only during the call.
	RequestRetransmit(layer int, seqs []uint16)
	// SetDemand tells which layers the track's subscribers on this bridge
	// target now, or still receive while they wait for their target's
	// keyframe: empty when nobody wants the track (stop fetching it).
	// Called when it changes; initially the demand is empty. Layers outside
	// d need not be fed. A subscriber whose layer is in d but not fed gets
	// no video until it targets another layer, so feed every layer in d
	// (lower layers cost little); a source that feeds only d.Highest()
	// starves the subscribers that target lower layers. A subscriber
	// switches to a layer when that layer's keyframe arrives.
	SetDemand(d Demand)
}

// TrackSink receives the packets of one layer of a track subscribed with
// Room.Subscribe, as the publisher sent them: original SSRC, sequence
// number, timestamp, payload type and header extensions, so that the far
// side's packet cache and NACKs speak the same sequence numbers.
type TrackSink interface {
	// WriteRTP is called from the subscription's one writer goroutine with
	// the layer the packet belongs to (the subscribed one, or the previous
	// one until the switch keyframe arrives) and the whole RTP packet. pkt
	// is valid only during the call. It must not block: a relay queues the
	// packet (copying it) or drops and counts it.
	WriteRTP(layer int, pkt []byte)
}

// Demand is a set of simulcast layers, bit i for layer i.
type Demand uint8

// Highest returns the highest layer in d, or -1 when d is empty.
func (d Demand) Highest() int { return bits.Len8(uint8(d)) - 1 }

// Has reports whether layer is in d.
func (d Demand) Has(layer int) bool { return layer >= 0 && layer < 8 && d&(1<<layer) != 0 }

// LayerInfo describes one simulcast layer.
type LayerInfo struct {
	// RID is the layer's RTP stream ID ("q", "h", "f"); empty for a track
	// without simulcast.
	RID string
	// Height is the frame height in pixels; 0: unknown (the bridge reads
	// it from VP8 keyframes, or assumes the 720p/360p/180p ladder).
	Height int
	// Bitrate is the layer's bitrate in bits/s as measured where the
	// publisher is; 0: unknown. Layer choice uses it for a layer that is
	// not flowing into this bridge because nobody here wanted it yet.
	Bitrate int64
	// Inactive: the publisher currently sends nothing on this layer (its
	// encoder dropped it); layer choice skips it.
	Inactive bool
}

// PublishParams describe a track published with Room.Publish.
type PublishParams struct {
	// TrackID is the track's ID, unique in the room (the relay keeps the
	// ID the publisher's bridge gave it). Required, at most 64 bytes.
	TrackID string
	// Participant is the publisher's participant ID. Required, at most 64
	// bytes.
	Participant string
	// Kind is audio or video.
	Kind webrtc.RTPCodecType
	// Codec is the codec the packets carry: MIME type and clock rate are
	// required; payload type, channels and fmtp as the publisher
	// negotiated them.
	Codec webrtc.RTPCodecParameters
	// AudioLevelID is the RFC 6464 header extension ID the packets carry
	// (1-14), or 0 when they carry none.
	AudioLevelID uint8
	// Layers are the simulcast layers, low to high (at most 4). Empty: one
	// layer without RID.
	Layers []LayerInfo
	// E2EE: the payload is end-to-end encrypted by the clients (from the
	// publisher's bridge); kept in TrackInfo.E2EE.
	E2EE bool
}

// Publication is a track published with Room.Publish.
type Publication struct {
	up *UpTrack // static
	// hdr is WriteRTP's parse buffer; owned by the WriteRTP caller.
	hdr rtp.Header
}

// Info returns the track's description (Remote is true).
func (p *Publication) Info() TrackInfo { return p.up.info }

// WriteRTP feeds one RTP packet of layer into the track: it is parsed,
// stored once in the layer's packet cache and offered to every subscriber,
// exactly as a packet read from a participant's PeerConnection. It
// allocates nothing and never blocks; a bad packet (unknown layer, header
// that does not parse, bigger than 1500 bytes) is dropped and counted.
// Calls must not overlap (one feeding goroutine per publication); pkt is
// not kept after the call.
func (p *Publication) WriteRTP(layer int, pkt []byte) {
	up := p.up
	if layer < 0 || layer >= len(up.layers) {
		up.stats.dropMalformed.Add(1)
		return
	}
	if up.ended.Load() {
		up.stats.dropUnpublished.Add(1)
		return
	}
	up.handlePacket(layer, pkt, &p.hdr)
}

// SetLayerInfo updates what the source says about layer: the height,
// bitrate and activity measured at the publisher's bridge (Room.TrackParams
// there), which layer choice here uses for layers that do not flow here.
// A relay passes them on when they change (every second or so).
// Out-of-range layers are ignored; the RID does not change.
func (p *Publication) SetLayerInfo(layer int, info LayerInfo) {
	if layer < 0 || layer >= len(p.up.layers) {
		return
	}
	p.up.layers[layer].declare(info)
}

// Close unpublishes the track: its subscribers drop it, TrackUnpublished
// is reported, the source is no longer called. Idempotent; it waits for
// the track's control goroutine, so it must not be called from a
// TrackSource method.
func (p *Publication) Close() {
	p.up.close()
	<-p.up.ctlDone
}

// Subscription is a subscriber of a track added with Room.Subscribe.
type Subscription struct {
	dt *DownTrack // static
	wg sync.WaitGroup
}

// Info returns the subscribed track's description.
func (s *Subscription) Info() TrackInfo { return s.dt.up.info }

// SetLayer changes the layer forwarded to the sink. The switch happens
// at the first keyframe of the new layer (one is asked for); until then
// the old layer keeps flowing. -1 pauses. Out-of-range values are
// clamped.
func (s *Subscription) SetLayer(layer int) {
	dt := s.dt
	if !dt.video {
		return
	}
	layer = max(-1, min(layer, len(dt.up.layers)-1))
	dt.setTarget(int32(layer))
}

// Layer returns the layer being forwarded, or -1 before the first
// keyframe and while paused.
func (s *Subscription) Layer() int { return int(s.dt.cur.Load()) }

// RequestKeyframe asks the track's source for a keyframe of the layer
// being forwarded (or awaited). Rate-limited; never blocks.
func (s *Subscription) RequestKeyframe() {
	dt := s.dt
	li := dt.cur.Load()
	if li < 0 {
		li = dt.target.Load()
	}
	dt.up.requestKeyframe(int(li))
}

// Retransmit sends the packets of layer with the given sequence numbers
// (as the sink received them) to the sink again, from the packet cache,
// through the writer goroutine. Packets no longer cached are counted as
// NACK misses. Never blocks; allocates nothing.
func (s *Subscription) Retransmit(layer int, seqs []uint16) {
	dt := s.dt
	if layer < 0 || layer >= len(dt.up.layers) {
		return
	}
	for _, seq := range seqs {
		dt.enqueueRetransmit(uint8(layer), seq)
	}
}

// Done is closed when the subscription ends: Close, or the track was
// unpublished.
func (s *Subscription) Done() <-chan struct{} { return s.dt.done }

// Close ends the subscription and waits for its writer. Idempotent; must
// not be called from TrackSink.WriteRTP.
func (s *Subscription) Close() {
	s.dt.detach()
	s.wg.Wait()
}

var _ TrackSource = pionSource{}

// maxIDLen bounds the track and participant IDs Publish accepts.
const maxIDLen = 64

// validate checks params as Publish takes them.
func (p *PublishParams) validate() error {
	switch {
	case p.TrackID == "" || len(p.TrackID) > maxIDLen,
		p.Participant == "" || len(p.Participant) > maxIDLen,
		p.Codec.ClockRate == 0 || p.AudioLevelID > 14,
		len(p.Layers) > maxLayers:
		return ErrInvalidTrack
	}
	mime := strings.ToLower(p.Codec.MimeType)
	switch p.Kind {
	case webrtc.RTPCodecTypeAudio:
		if !strings.HasPrefix(mime, "audio/") || len(p.Layers) > 1 {
			return ErrInvalidTrack
		}
	case webrtc.RTPCodecTypeVideo:
		if !strings.HasPrefix(mime, "video/") {
			return ErrInvalidTrack
		}
	default:
		return ErrInvalidTrack
	}
	for _, l := range p.Layers {
		if len(l.RID) > 16 {
			return ErrInvalidTrack
		}
	}
	return nil
}

// Publish adds a track whose packets src's owner writes with
// Publication.WriteRTP (the relay's import of a track from another
// bridge). Every participant of the room but the publisher (by ID) is
// subscribed to it as to a participant's track, and TrackPublished reports
// it with Remote set. The track asks src for keyframes, for the packets
// missing from its cache, and tells it the demand (initially none). src may
// be called before Publish returns.
func (r *Room) Publish(params PublishParams, src TrackSource) (*Publication, error) {
	if src == nil {
		return nil, ErrInvalidTrack
	}
	if err := params.validate(); err != nil {
		return nil, err
	}
	params.Layers = append([]LayerInfo(nil), params.Layers...)
	up := newRemoteTrack(r, params, src)
	if err := r.addTrack(up); err != nil {
		return nil, err
	}
	return &Publication{up: up}, nil
}

// Subscribe adds sink as a subscriber of the track: it receives the
// packets of layer (clamped to the track's layers; 0 for audio) as the
// publisher sent them, starting with the layer's last keyframe from the
// cache when it is recent, otherwise at the keyframe asked of the source.
// The subscription counts in the track's demand. It ends with Close, or
// when the track is unpublished (Done).
func (r *Room) Subscribe(trackID string, layer int, sink TrackSink) (*Subscription, error) {
	if sink == nil {
		return nil, ErrInvalidTrack
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	up := r.tracks[trackID]
	if up == nil {
		r.mu.Unlock()
		return nil, ErrTrackNotFound
	}
	s := &Subscription{}
	dt := newSinkTrack(up, sink, &s.wg)
	s.dt, dt.subn = dt, s
	if dt.video {
		dt.target.Store(int32(max(0, min(layer, len(up.layers)-1))))
	}
	if !up.attach(dt) || !up.addSub(dt) {
		r.mu.Unlock()
		return nil, ErrTrackNotFound
	}
	r.subs[s] = struct{}{}
	s.wg.Add(1)
	go dt.writeLoop()
	r.mu.Unlock()
	dt.startVideo()
	return s, nil
}

// forgetSubscription drops s from the room; called when it ends.
func (r *Room) forgetSubscription(s *Subscription) {
	r.mu.Lock()
	delete(r.subs, s)
	r.mu.Unlock()
}

// TrackParams returns what a far bridge needs to publish the track there:
// IDs, kind, codec, audio level extension ID and the layers with their
// current height, bitrate and activity.
func (r *Room) TrackParams(trackID string) (PublishParams, error) {
	r.mu.Lock()
	up := r.tracks[trackID]
	r.mu.Unlock()
	if up == nil {
		return PublishParams{}, ErrTrackNotFound
	}
	return up.params(), nil
}
