package client

import (
	"encoding/binary"

	"github.com/pion/webrtc/v4"
)

// Synthetic media. Every packet a Synth sends carries a Stamp at a fixed
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

// A synthetic VP8 payload starts with a 1-byte payload descriptor (S=1,
// partition 0 on a frame's first packet), then, on a frame's first packet,
// a 3-byte frame tag whose bit 0 is 0 on keyframes, the keyframe start code
// and size (zeros on later packets), then the Stamp (synth.go has the whole
// layout).
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

// NewSimulcastVideo returns one TrackLocalStaticRTP per layer, all with the
// same track and stream ID, for Options.Simulcast.
func NewSimulcastVideo(id, streamID string, layers []SynthLayer) ([]*webrtc.TrackLocalStaticRTP, error) {
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
