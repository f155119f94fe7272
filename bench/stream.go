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
	frames  map[uint64]int // (layer<<32 | frame) → packets received, frames in progress
	newest  uint32         // newest frame number seen
}

func newStream(p *participant, t *webrtc.TrackRemote) *stream {
	s := &stream{
		sub:       p,
		video:     t.Kind() == webrtc.RTPCodecTypeVideo,
		trackID:   t.ID(),
		publisher: t.StreamID(),
		layer:     -1,
		frames:    map[uint64]int{},
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
	// A frame is rendered once all its packets are in.
	key := uint64(v.Layer)<<32 | uint64(v.Frame)
	n := s.frames[key] + 1
	if n >= v.Count {
		delete(s.frames, key)
		from, to := s.sub.run.window()
		if s.first.IsZero() {
			if v.Key {
				s.first = now
				s.frz.frame(now, from, to)
			}
		} else if s.ended.IsZero() {
			s.frz.frame(now, from, to)
		}
	} else {
		s.frames[key] = n
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
	if !s.loss[v.Layer].add(v.Seq) {
		return
	}
	s.packets++
	s.bytes[v.Layer] += uint64(size)
	s.delay.Add((now.UnixNano() - v.SentNS) / 1e3)
	s.jit.add(v.SentNS, now.UnixNano())
}

// end marks the subscription over at t (the first time only).
func (s *stream) end(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.IsZero() {
		s.ended = t
	}
}
