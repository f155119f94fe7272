package client

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Synthetic media. Every packet a Source sends carries a Stamp at a fixed
// offset of its payload, after the codec's payload descriptor, so that a
// receiver on the same machine measures one-way delay and loss exactly.

// StampSize is the size of a Stamp in a payload.
const StampSize = 16

// Stamp marks a synthetic packet: who sent it, which frame, when.
type Stamp struct {
	Sender uint32 // the publisher's tag
	Frame  uint32 // frame (video) or packet (audio) number, from 0
	SentNS int64  // send time, Unix nanoseconds
}

// Put writes s to b[:StampSize].
func (s Stamp) Put(b []byte) {
	binary.BigEndian.PutUint32(b[0:], s.Sender)
	binary.BigEndian.PutUint32(b[4:], s.Frame)
	binary.BigEndian.PutUint64(b[8:], uint64(s.SentNS))
}

// ReadStamp reads a Stamp from b.
func ReadStamp(b []byte) (Stamp, bool) {
	if len(b) < StampSize {
		return Stamp{}, false
	}
	return Stamp{
		Sender: binary.BigEndian.Uint32(b[0:]),
		Frame:  binary.BigEndian.Uint32(b[4:]),
		SentNS: int64(binary.BigEndian.Uint64(b[8:])),
	}, true
}

// VP8 payloads here are one packet per frame: a 1-byte payload descriptor
// (S=1, partition 0), a 3-byte frame tag whose bit 0 is 0 on keyframes, the
// keyframe start code and size, the Stamp, then padding.
const (
	vp8DescriptorSize = 1
	vp8HeaderSize     = 10 // frame tag + start code + width + height
	// VP8StampOffset is where the Stamp sits in a synthetic VP8 payload.
	VP8StampOffset = vp8DescriptorSize + vp8HeaderSize
	// OpusStampOffset is where the Stamp sits in a synthetic Opus payload.
	OpusStampOffset = 1
)

// IsVP8Keyframe reports whether a VP8 RTP payload starts a keyframe.
func IsVP8Keyframe(payload []byte) bool {
	if len(payload) < 2 {
		return false
	}
	// Skip the payload descriptor: X bit extends it.
	i := 1
	if payload[0]&0x80 != 0 {
		if len(payload) < 2 {
			return false
		}
		x := payload[1]
		i++
		if x&0x80 != 0 { // I: picture ID
			if len(payload) <= i {
				return false
			}
			if payload[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if x&0x40 != 0 { // L
			i++
		}
		if x&0x30 != 0 { // T or K
			i++
		}
	}
	if payload[0]&0x10 == 0 || len(payload) <= i {
		return false // not the start of a frame
	}
	return payload[i]&0x01 == 0
}

// Layer is one simulcast layer of a synthetic video.
type Layer struct {
	RID    string
	Width  int
	Height int
	// Bytes is the payload size of each frame's packet (at most 1100).
	Bytes int
}

// DefaultLayers are three layers shaped like a browser's 720p simulcast at
// 30 fps, one packet per frame: about 150, 400 and 1000 bytes per frame.
var DefaultLayers = []Layer{
	{RID: "q", Width: 320, Height: 180, Bytes: 150},
	{RID: "h", Width: 640, Height: 360, Bytes: 400},
	{RID: "f", Width: 1280, Height: 720, Bytes: 1000},
}

// NewSimulcastVideo returns one TrackLocalStaticRTP per layer, all with the
// same track and stream ID, for Options.Simulcast.
func NewSimulcastVideo(id, streamID string, layers []Layer) ([]*webrtc.TrackLocalStaticRTP, error) {
	var out []*webrtc.TrackLocalStaticRTP
	for _, l := range layers {
		t, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000},
			id, streamID, webrtc.WithRTPStreamID(l.RID))
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// NewVideo returns a single-layer VP8 track.
func NewVideo(id, streamID string) (*webrtc.TrackLocalStaticRTP, error) {
	return webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, id, streamID)
}

// NewAudio returns an Opus track.
func NewAudio(id, streamID string) (*webrtc.TrackLocalStaticRTP, error) {
	return webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, id, streamID)
}

// Source writes synthetic media until its context ends.
type Source struct {
	// Sender tags every Stamp.
	Sender uint32
	// keyframe is set by RequestKeyframe and cleared by the next frame.
	keyframe atomic.Bool
	// Sent counts packets written.
	Sent atomic.Uint64
	// Level is the audio level RunAudio sends in RFC 6464 terms: 0 is
	// loudest, 127 silence. The zero value is a loud speaker.
	Level atomic.Uint32
}

// RequestKeyframe makes the next video frame of every layer a keyframe, as
// a browser's encoder does on PLI or FIR.
func (s *Source) RequestKeyframe() { s.keyframe.Store(true) }

// RunVideo sends frames at fps on the given layers (one track per layer,
// same order) until ctx ends. The first frame is a keyframe; later ones are
// keyframes only on request.
//
// ext returns the negotiated header extensions (Client.Ext); frames are
// sent only once it is non-nil, each with MID and RID as a browser does.
func (s *Source) RunVideo(ctx context.Context, ext func() *Ext, tracks []*webrtc.TrackLocalStaticRTP, layers []Layer, fps int) {
	tick := time.NewTicker(time.Second / time.Duration(fps))
	defer tick.Stop()
	type state struct {
		pkt rtp.Packet
		buf []byte
	}
	st := make([]state, len(tracks))
	for i := range st {
		st[i].pkt.Header = rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(i * 1000), Timestamp: uint32(i * 7777), Marker: true}
		st[i].buf = make([]byte, max(layers[i].Bytes, VP8StampOffset+StampSize))
	}
	s.keyframe.Store(true)
	start := time.Now()
	for frame := uint32(0); ; {
		e := ext()
		if e == nil {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				continue
			}
		}
		key := s.keyframe.Swap(false)
		now := time.Now()
		for i, t := range tracks {
			b := st[i].buf
			b[0] = 0x10 // S=1, partition 0
			if key {
				b[1] = 0x00 // keyframe, version 0, show_frame 0 (unused here)
			} else {
				b[1] = 0x01
			}
			b[2], b[3] = 0, 0
			b[4], b[5], b[6] = 0x9d, 0x01, 0x2a
			binary.LittleEndian.PutUint16(b[7:], uint16(layers[i].Width))
			binary.LittleEndian.PutUint16(b[9:], uint16(layers[i].Height))
			Stamp{Sender: s.Sender, Frame: frame, SentNS: now.UnixNano()}.Put(b[VP8StampOffset:])
			p := &st[i].pkt
			p.Payload = b
			if e.MID != 0 && e.RID != 0 && len(tracks) > 1 {
				p.Header.SetExtension(e.MID, []byte(e.VideoMID))
				p.Header.SetExtension(e.RID, []byte(layers[i].RID))
			}
			p.SequenceNumber++
			p.Timestamp = uint32(i*7777) + uint32(now.Sub(start)*90000/time.Second)
			if err := t.WriteRTP(p); err == nil {
				s.Sent.Add(1)
			}
		}
		frame++
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// RunAudio sends a 20 ms Opus-sized packet (size bytes) every 20 ms until
// ctx ends, with the RFC 6464 audio level of level() when the extension was
// negotiated (pion sets it when the header extension is registered).
func (s *Source) RunAudio(ctx context.Context, ext func() *Ext, t *webrtc.TrackLocalStaticRTP, size int) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, max(size, OpusStampOffset+StampSize))
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 100, Timestamp: 4242}}
	for n := uint32(0); ; n++ {
		buf[0] = 0xfc // Opus TOC: CELT FB 20 ms, one frame
		Stamp{Sender: s.Sender, Frame: n, SentNS: time.Now().UnixNano()}.Put(buf[OpusStampOffset:])
		pkt.Payload = buf
		pkt.SequenceNumber++
		pkt.Timestamp += 960
		if e := ext(); e != nil && e.AudioLevel != 0 {
			pkt.Header.SetExtension(e.AudioLevel, []byte{0x80 | byte(s.Level.Load()&0x7f)})
		}
		if err := t.WriteRTP(&pkt); err == nil {
			s.Sent.Add(1)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
