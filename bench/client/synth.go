package client

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Browser-shaped synthetic media for `meshmeet bench`: frames of realistic
// size split into MTU-sized packets, periodic and requested keyframes,
// talk/silence audio with RFC 6464 levels. The integration tests of
// signaling send it too and check every packet with ParseVideo.
//
// Every packet of RunSimulcast carries, after the 1-byte VP8 payload
// descriptor:
//
//	[1:11]  on a frame's first packet: VP8 frame tag (bit 0 clear on
//	        keyframes), start code, width, height; zeros on later packets
//	[11:27] Stamp {Sender, Frame, SentNS}
//	[27:35] VideoTail {Layer, Flags, Index, Count, Seq}
//	[35:]   zero padding up to the packet's size
//
// Seq counts the packets of one layer from 0, so a receiver counts loss
// per layer without relying on RTP sequence numbers (which the bridge
// rewrites when it switches layers). Frame is shared by the layers: a
// receiver sees each frame number once whatever layer it gets.

// AudioLevelURI is the RFC 6464 client-to-mixer audio level extension.
const AudioLevelURI = sdp.AudioLevelURI

// VideoTailSize is the size of the per-packet tail after the Stamp.
const VideoTailSize = 8

// videoMinPacket is the smallest synthetic video packet.
const videoMinPacket = VP8StampOffset + StampSize + VideoTailSize

// MaxVideoPayload is the largest RTP payload RunSimulcast sends, as a
// browser packetizes for a 1200-byte MTU.
const MaxVideoPayload = 1150

// VideoInfo is what a receiver reads from one synthetic video packet.
type VideoInfo struct {
	Stamp
	Layer int    // simulcast layer index, 0 = lowest
	Key   bool   // the packet belongs to a keyframe
	Index int    // packet index within the frame
	Count int    // packets in the frame
	Seq   uint32 // packet sequence within the layer
}

const flagKeyframe = 0x01

// ParseVideo reads a packet sent by RunSimulcast.
func ParseVideo(payload []byte) (VideoInfo, bool) {
	if len(payload) < videoMinPacket {
		return VideoInfo{}, false
	}
	st, _ := ReadStamp(payload[VP8StampOffset:])
	t := payload[VP8StampOffset+StampSize:]
	v := VideoInfo{
		Stamp: st,
		Layer: int(t[0]),
		Key:   t[1]&flagKeyframe != 0,
		Index: int(t[2]),
		Count: int(t[3]),
		Seq:   binary.BigEndian.Uint32(t[4:]),
	}
	if v.Count == 0 || v.Index >= v.Count {
		return VideoInfo{}, false
	}
	return v, true
}

// SynthLayer is one simulcast layer of browser-shaped video.
type SynthLayer struct {
	RID           string
	Width, Height int
	Bitrate       int // bits/s
}

// Synth sends browser-shaped synthetic media (RunSimulcast, RunTalk).
type Synth struct {
	// Sender tags every Stamp. Static.
	Sender uint32
	// Ext returns the negotiated header extensions, nil until the pub
	// answer arrived (Client.Ext); nothing is sent before. Nil: send
	// without extensions. Static.
	Ext func() *HeaderExt
	// keyframe is set by RequestKeyframe and cleared by the next frame.
	keyframe atomic.Bool
	// Sent and SentBytes count packets and payload bytes written.
	Sent, SentBytes atomic.Uint64
	// Drop and DropAudio, while set, make RunSimulcast and RunTalk produce
	// packets (sequence numbers advance) without writing them, as if the
	// path lost them. Dropped counts those packets.
	Drop, DropAudio atomic.Bool
	Dropped         atomic.Uint64
	// Skipped counts audio packets never produced because the sender was
	// starved of CPU for over 200 ms and skipped ahead.
	Skipped atomic.Uint64
}

// RequestKeyframe makes the next video frame of every layer a keyframe, as
// a browser's encoder does on PLI or FIR.
func (s *Synth) RequestKeyframe() { s.keyframe.Store(true) }

// waitExt waits for the negotiated extensions.
func (s *Synth) waitExt(ctx context.Context) (*HeaderExt, bool) {
	for {
		if s.Ext == nil {
			return &HeaderExt{}, true
		}
		if e := s.Ext(); e != nil {
			return e, true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// VideoOptions shape RunSimulcast.
type VideoOptions struct {
	// Layers, lowest first, one per track.
	Layers []SynthLayer
	// FPS is the frame rate [30].
	FPS int
	// KeyframeInterval sends a keyframe this often; 0: only the first frame
	// and on request (PLI/FIR), as libwebrtc does.
	KeyframeInterval time.Duration
	// KeyframeScale is how many times larger than an average frame a
	// keyframe is [4].
	KeyframeScale float64
	// Seed seeds the frame-size variation (±20 %).
	Seed uint64
}

// BrowserLayers are three layers shaped like Chrome's 720p simulcast at 30
// fps: 150, 500 and 1700 kbit/s.
var BrowserLayers = []SynthLayer{
	{RID: "q", Width: 320, Height: 180, Bitrate: 150_000},
	{RID: "h", Width: 640, Height: 360, Bitrate: 500_000},
	{RID: "f", Width: 1280, Height: 720, Bitrate: 1_700_000},
}

// RunSimulcast sends frames on the given layers (one track per layer, same
// order) until ctx ends. While Drop is set, packets are produced and
// counted but not written, as a lossy path would drop them.
func (s *Synth) RunSimulcast(ctx context.Context, tracks []*webrtc.TrackLocalStaticRTP, o VideoOptions) {
	ext, ok := s.waitExt(ctx)
	if !ok {
		return
	}
	if o.FPS <= 0 {
		o.FPS = 30
	}
	if o.KeyframeScale <= 0 {
		o.KeyframeScale = 4
	}
	rng := rand.New(rand.NewPCG(o.Seed, uint64(s.Sender)))
	frameDur := time.Second / time.Duration(o.FPS)
	tick := time.NewTicker(frameDur)
	defer tick.Stop()
	type state struct {
		pkt rtp.Packet
		buf []byte
		seq uint32
	}
	st := make([]state, len(tracks))
	for i := range st {
		st[i].pkt.Header = rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(rng.Uint32()), Timestamp: rng.Uint32()}
		st[i].buf = make([]byte, MaxVideoPayload)
	}
	s.keyframe.Store(true)
	start := time.Now()
	lastKey := start
	for frame := uint32(0); ; frame++ {
		now := time.Now()
		key := s.keyframe.Swap(false)
		if o.KeyframeInterval > 0 && now.Sub(lastKey) >= o.KeyframeInterval {
			key = true
		}
		if key {
			lastKey = now
		}
		vary := 0.8 + 0.4*rng.Float64()
		drop := s.Drop.Load()
		for i, t := range tracks {
			l := o.Layers[i]
			size := int(float64(l.Bitrate) / 8 / float64(o.FPS) * vary)
			if key {
				size = int(float64(size) * o.KeyframeScale)
			}
			size = max(size, videoMinPacket)
			count := min((size+MaxVideoPayload-1)/MaxVideoPayload, 255)
			per := max(size/count, videoMinPacket)
			ts := st[i].pkt.Timestamp + uint32(now.Sub(start)*90000/time.Second)
			for idx := 0; idx < count; idx++ {
				b := st[i].buf[:per]
				clear(b)
				if idx == 0 {
					b[0] = 0x10 // S=1, partition 0
					if !key {
						b[1] = 0x01
					}
					b[4], b[5], b[6] = 0x9d, 0x01, 0x2a
					binary.LittleEndian.PutUint16(b[7:], uint16(l.Width))
					binary.LittleEndian.PutUint16(b[9:], uint16(l.Height))
				}
				Stamp{Sender: s.Sender, Frame: frame, SentNS: now.UnixNano()}.Put(b[VP8StampOffset:])
				tail := b[VP8StampOffset+StampSize:]
				tail[0] = byte(i)
				if key {
					tail[1] = flagKeyframe
				}
				tail[2], tail[3] = byte(idx), byte(count)
				binary.BigEndian.PutUint32(tail[4:], st[i].seq)
				st[i].seq++
				p := rtp.Packet{Header: st[i].pkt.Header, Payload: b}
				p.SequenceNumber = st[i].pkt.SequenceNumber + 1
				st[i].pkt.SequenceNumber++
				p.Timestamp = ts
				p.Marker = idx == count-1
				if ext.MID != 0 && ext.RID != 0 && len(tracks) > 1 {
					p.Header.SetExtension(ext.MID, []byte(ext.VideoMID))
					p.Header.SetExtension(ext.RID, []byte(l.RID))
				}
				if drop {
					s.Dropped.Add(1)
					continue
				}
				if err := t.WriteRTP(&p); err == nil {
					s.Sent.Add(1)
					s.SentBytes.Add(uint64(len(b)))
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// AudioOptions shape RunTalk.
type AudioOptions struct {
	// TalkBytes and SilenceBytes are the payload sizes while talking and
	// while silent [80 and 20: Opus at 32 kbit/s, and its comfort frames
	// padded to carry a Stamp].
	TalkBytes, SilenceBytes int
	// Talk is the share of time spent talking, 0 to 1 [0.5]; talk spurts
	// and pauses last 0.5 to 3 s.
	Talk float64
	// Seed seeds the talk pattern.
	Seed uint64
}

// RunTalk sends one 20 ms Opus packet every 20 ms until ctx ends,
// alternating talk spurts and silence, with the RFC 6464 level (about
// -25 dBov talking, -127 silent, voice activity bit set while talking).
func (s *Synth) RunTalk(ctx context.Context, t *webrtc.TrackLocalStaticRTP, o AudioOptions) {
	ext, ok := s.waitExt(ctx)
	if !ok {
		return
	}
	if o.TalkBytes <= 0 {
		o.TalkBytes = 80
	}
	if o.SilenceBytes <= 0 {
		o.SilenceBytes = 20
	}
	if o.Talk <= 0 {
		o.Talk = 0.5
	}
	rng := rand.New(rand.NewPCG(o.Seed, uint64(s.Sender)^0xa0d10))
	// Packets are due every 20 ms from the start, as an audio device
	// delivers them: a sender that was descheduled catches up at once (a
	// ticker would drop the ticks it missed), unless it fell more than
	// 200 ms behind, where it starts afresh.
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	buf := make([]byte, max(o.TalkBytes, o.SilenceBytes, OpusStampOffset+StampSize))
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: uint16(rng.Uint32()), Timestamp: rng.Uint32()}}
	talking := rng.Float64() < o.Talk
	left := 0 // packets left in this spurt or pause
	for n := uint32(0); ; n++ {
		if left <= 0 {
			talking = rng.Float64() < o.Talk
			left = 25 + rng.IntN(125)
		}
		left--
		size, level := o.SilenceBytes, byte(127)
		if talking {
			size, level = o.TalkBytes, 0x80|byte(20+rng.IntN(10))
		}
		size = max(size, OpusStampOffset+StampSize)
		b := buf[:size]
		clear(b)
		b[0] = 0xfc // Opus TOC: CELT FB 20 ms, one frame
		Stamp{Sender: s.Sender, Frame: n, SentNS: time.Now().UnixNano()}.Put(b[OpusStampOffset:])
		pkt.Payload = b
		pkt.SequenceNumber++
		pkt.Timestamp += 960
		pkt.Header.Extension = false
		pkt.Header.Extensions = pkt.Header.Extensions[:0]
		if ext.AudioLevel != 0 {
			pkt.Header.SetExtension(ext.AudioLevel, []byte{level})
		}
		if s.DropAudio.Load() {
			s.Dropped.Add(1)
		} else if err := t.WriteRTP(&pkt); err == nil {
			s.Sent.Add(1)
			s.SentBytes.Add(uint64(size))
		}
		next = next.Add(20 * time.Millisecond)
		d := time.Until(next)
		if d < -200*time.Millisecond {
			s.Skipped.Add(uint64(-d / (20 * time.Millisecond)))
			next, d = time.Now(), 0
		}
		if d <= 0 {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		timer.Reset(d)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}
