package bridge

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// FuzzKeyframe feeds arbitrary payloads to the payload-descriptor parsers:
// they must never panic, and a VP8 height is only found on a keyframe.
func FuzzKeyframe(f *testing.F) {
	f.Add(vp8Payload(0, 0, true))
	f.Add(vp8Payload(2, 300, false))
	f.Add([]byte{0x78, 0x00, 0x02, 0x67, 0x42})
	f.Add([]byte{0x7c, 0x85})
	f.Add([]byte{0xa8, 0x01, 0x00})
	f.Add([]byte{0x18})
	f.Fuzz(func(t *testing.T, p []byte) {
		kf := isVP8Keyframe(p)
		if vp8Height(p) > 0 && !kf {
			t.Fatalf("height from a non-keyframe %x", p)
		}
		isH264Keyframe(p)
		isVP9Keyframe(p)
		isAV1Keyframe(p)
	})
}

// FuzzHandlePacket feeds arbitrary datagrams to a video UpTrack with one
// subscriber: the per-packet path must count, not panic.
func FuzzHandlePacket(f *testing.F) {
	var pb packetBuilder
	pb.buf = make([]byte, 1500)
	f.Add(append([]byte(nil), pb.build(1, 3000, vp8Payload(0, 1, true), false)...))
	f.Add(append([]byte(nil), pb.build(2, 3000, vp8Payload(0, 2, false), true)...))
	f.Add([]byte{0xa0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0x04, 0xd2, 0x10, 0x10, 0x00, 0x04})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		u := testUpTrack(webrtc.RTPCodecTypeVideo, 1)
		var w countingWriter
		dt := testDownTrack(u, &w)
		var hdr rtp.Header
		u.handlePacket(0, pkt, &hdr)
		dt.drain()
		dt.enqueueNACK(hdr.SequenceNumber)
		dt.drain()
	})
}
