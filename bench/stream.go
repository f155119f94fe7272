package bench

import (
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
)

// stream is one remote track a participant receives: it measures delay,
// loss, jitter, bitrate per layer, first frame and freezes from the Stamps.
type stream struct {
	sub       *participant
	video     bool
	trackID   string // static
	publisher string // publishing participant's ID (the MediaStream ID); static

	// mu guards everything below; the reader goroutine holds it per packet.
	mu      sync.Mutex
	from    *participant // the publisher, once its Stamp identified it
	start   time.Time    // the later of the subscriber's and the publisher's start
	first   time.Time    // first rendered frame (video) or first packet (audio)
	ended   time.Time    // the subscription ended (leave, unpublish)
	lastRx  time.Time
	delay   Histogram // µs, packets sent in the window
	jit     jitter
	loss    [3]lossCounter // per layer; audio uses [0]
	layer   int            // layer of the last packet (video)
	bytes   [3]uint64      // payload bytes per layer, in the window
	packets uint64         // packets in the window
	frz     freezes
	frames  map[uint64]*framePackets // (layer<<32 | frame) → packets received, frames in progress
	newest  uint32                   // newest frame number seen

	// The decoder: frames render in order from a keyframe on; a missing
	// frame stops rendering until it is repaired (NACK) or a keyframe
	// comes, which the stream asks for with PLI, as a browser does.
	rendered bool            // a keyframe started the chain
	last     uint32          // last rendered frame
	pending  map[uint32]bool // complete frames after a missing one
	broken   time.Time       // since when a frame is missing; zero: none
	lastPLI  time.Time
	plis     int

	// pauseEv counts last-N pause and resume events (setPaused); lossEv
	// is its value when each layer's loss counter last took a packet. A
	// layer whose packets resume after such an event starts a new loss
	// segment: what the bridge did not send while the video was paused
	// is not lost.
	pauseEv uint32
	lossEv  [3]uint32
	// eventNS is when the last pause or resume event came (Unix ns). On
	// resume the bridge may first replay what it cached (for a track from
	// another bridge, what crossed the relay up to shortly after the
	// pause), then cut to a fresh keyframe: after an event, a loss
	// segment starts only at a packet sent after it.
	eventNS int64
}

// setPaused records that last-N paused (on) or resumed the video at t.
func (s *stream) setPaused(on bool, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauseEv++
	s.eventNS = t.UnixNano()
	s.frz.pause(on, t)
}

// framePackets are the packets of one frame received so far.
type framePackets struct {
	got [4]uint64 // bit per packet index
	n   int
}

func newStream(p *participant, t *webrtc.TrackRemote) *stream {
	s := &stream{
		sub:       p,
		video:     t.Kind() == webrtc.RTPCodecTypeVideo,
		trackID:   t.ID(),
		publisher: t.StreamID(),
		layer:     -1,
		frames:    map[uint64]*framePackets{},
		pending:   map[uint32]bool{},
	}
	return s
}

// read consumes the track until it ends.
func (s *stream) read(t *webrtc.TrackRemote) {
	r := s.sub.run
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		r.rx(len(pkt.Payload))
		if s.video {
			v, ok := client.ParseVideo(pkt.Payload)
			if !ok {
				r.malformed.Add(1)
				continue
			}
			s.onVideo(now, v, len(pkt.Payload))
			if s.wantPLI(now) {
				s.sub.pli(uint32(t.SSRC()))
			}
		} else {
			if len(pkt.Payload) <= client.OpusStampOffset {
				r.malformed.Add(1)
				continue
			}
			st, ok := client.ReadStamp(pkt.Payload[client.OpusStampOffset:])
			if !ok {
				r.malformed.Add(1)
				continue
			}
			s.onAudio(now, st, len(pkt.Payload))
		}
	}
}

// identify binds the stream to its publisher from the first Stamp.
func (s *stream) identify(tag uint32) {
	if s.from != nil {
		return
	}
	s.from = s.sub.run.byTag(tag)
	s.start = s.sub.start
	if s.from != nil {
		s.from.mu.Lock()
		if ps := s.from.pubStart; ps.After(s.start) {
			s.start = ps
		}
		s.from.mu.Unlock()
	}
}

func (s *stream) inWindow(sentNS int64) bool {
	from, to := s.sub.run.window()
	return sentNS >= from.UnixNano() && sentNS < to.UnixNano()
}

func (s *stream) onAudio(now time.Time, st client.Stamp, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identify(st.Sender)
	s.lastRx = now
	if s.first.IsZero() {
		s.first = now
	}
	if !s.inWindow(st.SentNS) {
		return
	}
	if !s.loss[0].add(st.Frame) {
		return // duplicate
	}
	s.packets++
	s.bytes[0] += uint64(size)
	s.delay.Add((now.UnixNano() - st.SentNS) / 1e3)
	s.jit.add(st.SentNS, now.UnixNano())
}

func (s *stream) onVideo(now time.Time, v client.VideoInfo, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identify(v.Sender)
	s.lastRx = now
	if v.Layer < 0 || v.Layer >= len(s.loss) {
		return
	}
	// A frame is complete once all its packets are in.
	key := uint64(v.Layer)<<32 | uint64(v.Frame)
	fp := s.frames[key]
	if fp == nil {
		fp = &framePackets{}
		s.frames[key] = fp
	}
	if bit := uint64(1) << (v.Index % 64); fp.got[v.Index/64]&bit == 0 {
		fp.got[v.Index/64] |= bit
		fp.n++
	}
	if fp.n >= v.Count {
		delete(s.frames, key)
		s.complete(now, v.Frame, v.Key)
	}
	if v.Frame > s.newest {
		s.newest = v.Frame
	}
	if len(s.frames) > 256 {
		for k := range s.frames {
			if uint32(k) < s.newest-120 {
				delete(s.frames, k)
			}
		}
	}
	if !s.inWindow(v.SentNS) {
		s.layer = v.Layer
		return
	}
	if v.Layer != s.layer {
		// The bridge switched layers: the packets this layer sent while the
		// receiver was on another one were never meant for it.
		lc := &s.loss[v.Layer]
		if lc.started && v.Seq > lc.last+1 {
			lc.restart()
		}
		s.layer = v.Layer
	}
	if s.lossEv[v.Layer] != s.pauseEv {
		if v.SentNS < s.eventNS {
			// Sent before the event (a replay, or in flight): neither
			// loss nor a new segment (delay and bytes still count).
			s.packets++
			s.bytes[v.Layer] += uint64(size)
			s.delay.Add((now.UnixNano() - v.SentNS) / 1e3)
			return
		}
		s.loss[v.Layer].restart() // paused or resumed since: a gap, not loss
		s.lossEv[v.Layer] = s.pauseEv
	}
	if !s.loss[v.Layer].add(v.Seq) {
		return
	}
	s.packets++
	s.bytes[v.Layer] += uint64(size)
	s.delay.Add((now.UnixNano() - v.SentNS) / 1e3)
	s.jit.add(v.SentNS, now.UnixNano())
}

// complete feeds a complete frame to the decoder model.
func (s *stream) complete(now time.Time, frame uint32, key bool) {
	switch {
	case key && (!s.rendered || frame > s.last):
		for f := range s.pending {
			if f <= frame {
				delete(s.pending, f)
			}
		}
		s.render(now, frame)
	case !s.rendered || frame <= s.last:
		return // before the first keyframe, or already past it
	case frame == s.last+1:
		s.render(now, frame)
	default:
		s.pending[frame] = true
		if s.broken.IsZero() {
			s.broken = now
		}
		return
	}
	for s.pending[s.last+1] {
		delete(s.pending, s.last+1)
		s.render(now, s.last+1)
	}
	if len(s.pending) == 0 {
		s.broken = time.Time{}
	}
}

// render shows frame at now.
func (s *stream) render(now time.Time, frame uint32) {
	s.rendered = true
	s.last = frame
	if s.first.IsZero() {
		s.first = now
	}
	if s.ended.IsZero() {
		from, to := s.sub.run.window()
		s.frz.frame(now, from, to)
	}
}

// wantPLI reports whether to ask for a keyframe now: a frame has been
// missing for longer than NACK repair takes, and no PLI went out in the
// last half second.
func (s *stream) wantPLI(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken.IsZero() || now.Sub(s.broken) < 250*time.Millisecond || now.Sub(s.lastPLI) < 500*time.Millisecond {
		return false
	}
	s.lastPLI = now
	s.plis++
	return true
}

// end marks the subscription over at t (the first time only).
func (s *stream) end(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.IsZero() {
		s.ended = t
	}
}
