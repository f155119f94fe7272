package bridge

import "strings"

// Keyframe detection reads only the RTP payload-descriptor prefix that a
// client leaves in clear under E2EE (as Jitsi does): the VP8/VP9 payload
// descriptor, the H.264 NAL header, the AV1 aggregation header. Each function
// reports whether pkt (the RTP payload) starts a keyframe.

// keyframeFunc returns the detector for a codec MIME type, or nil (audio,
// unknown codecs: every packet is a sync point).
func keyframeFunc(mime string) func(payload []byte) bool {
	switch strings.ToLower(mime) {
	case "video/vp8":
		return isVP8Keyframe
	case "video/h264":
		return isH264Keyframe
	case "video/vp9":
		return isVP9Keyframe
	case "video/av1":
		return isAV1Keyframe
	}
	return nil
}

// vp8Descriptor returns the offset of the VP8 payload header after the
// payload descriptor (RFC 7741 section 4.2), whether the packet starts
// partition 0 (S=1, PID=0), and ok=false for a malformed descriptor.
func vp8Descriptor(p []byte) (off int, start bool, ok bool) {
	if len(p) < 1 {
		return 0, false, false
	}
	x := p[0]&0x80 != 0
	start = p[0]&0x10 != 0 && p[0]&0x07 == 0
	off = 1
	if x {
		if len(p) < 2 {
			return 0, false, false
		}
		ext := p[1]
		off = 2
		if ext&0x80 != 0 { // I: picture ID
			if len(p) <= off {
				return 0, false, false
			}
			if p[off]&0x80 != 0 { // M: 15-bit picture ID
				off += 2
			} else {
				off++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			off++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX
			off++
		}
	}
	if off >= len(p) {
		return 0, false, false
	}
	return off, start, true
}

// isVP8Keyframe: the first packet of partition 0 with the P bit (inverse key
// frame flag) of the VP8 payload header clear (RFC 6386 section 9.1).
func isVP8Keyframe(p []byte) bool {
	off, start, ok := vp8Descriptor(p)
	return ok && start && p[off]&0x01 == 0
}

// vp8Height returns the frame height from a VP8 keyframe's first packet, or
// 0. The keyframe header (frame tag, start code 9d 01 2a, 14-bit width and
// height) is in the first ten bytes of the VP8 payload, which E2EE clients
// leave in clear.
func vp8Height(p []byte) int {
	off, start, ok := vp8Descriptor(p)
	if !ok || !start || len(p) < off+10 || p[off]&0x01 != 0 {
		return 0
	}
	h := p[off:]
	if h[3] != 0x9d || h[4] != 0x01 || h[5] != 0x2a {
		return 0
	}
	return int(h[8]) | int(h[9]&0x3f)<<8
}

// isH264Keyframe: an IDR slice or SPS, directly, inside STAP-A, or at the
// start of an FU-A (RFC 6184 section 5).
func isH264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch t := p[0] & 0x1f; t {
	case 5, 7: // IDR, SPS
		return true
	case 24: // STAP-A: [hdr][size16][nal]...
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if size == 0 || i+2+size > len(p) {
				return false
			}
			if nt := p[i+2] & 0x1f; nt == 5 || nt == 7 {
				return true
			}
			i += 2 + size
		}
	case 28: // FU-A
		if len(p) < 2 {
			return false
		}
		nt := p[1] & 0x1f
		return p[1]&0x80 != 0 && (nt == 5 || nt == 7)
	}
	return false
}

// isVP9Keyframe: beginning of a frame (B=1) that is not inter-predicted
// (P=0) in spatial layer 0 (draft-ietf-payload-vp9 section 4.2).
func isVP9Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	b := p[0]
	if b&0x40 != 0 || b&0x08 == 0 { // P set or B clear
		return false
	}
	if b&0x20 != 0 { // L: layer indices present
		off := 1
		if b&0x80 != 0 { // I: picture ID
			if len(p) < 2 {
				return false
			}
			if p[1]&0x80 != 0 {
				off += 2
			} else {
				off++
			}
		}
		if off >= len(p) {
			return false
		}
		if sid := (p[off] >> 1) & 0x07; sid != 0 {
			return false
		}
	}
	return true
}

// isAV1Keyframe: the N bit of the aggregation header, set on the first
// packet of a coded video sequence (AV1 RTP spec section 4.4).
func isAV1Keyframe(p []byte) bool {
	return len(p) >= 1 && p[0]&0x08 != 0
}
