package relay

import "encoding/binary"

// Protocol flow
//
// Two nodes that share at least one meeting hold one QUIC connection (RFC
// 9000) with DATAGRAM frames enabled (RFC 9221), mutual TLS 1.3 with the
// cluster CA and the ALPN ProtoV1. The node whose name sorts lower keeps the
// connection it dialled when both dial at once.
//
//   - Each side opens one unidirectional stream, its control stream, and
//     writes a Hello (protocol version, node name) first. Everything after
//     it is a sequence of control messages (control.go).
//   - A node that holds a room the peer shares sends RoomAttach(conference
//     ID). The receiver answers, for each of its local tracks of that room,
//     TrackPublished with a link-local track number it chooses (numbers are
//     per connection and per direction).
//   - A node whose local participants want a remote track sends
//     Subscribe(track number, layer); the owner starts sending the track's
//     RTP in datagrams until Unsubscribe or TrackUnpublished. Subscribe again
//     with another layer switches the layer.
//   - The receiver repairs losses with NACK(track, layer, seqs) and asks for
//     keyframes with KeyframeRequest(track, layer); the owner answers from its
//     bridge's packet cache and its publisher.
//   - LinkStats (RTT, loss, bitrate) go each way every few seconds;
//     RoomMessage carries bytes the caller defines (signaling's roster, chat,
//     mute and speaker events) to every peer of the room.
//   - After a break the connection is dialled again with backoff; RoomAttach
//     is sent again for every shared room, the tracks are published again
//     with new numbers, and subscriptions that are still wanted are renewed.
//
// Each RTP packet travels alone in one DATAGRAM frame:
//
//	+-+-+-+-+-+-+-+-+----------------------+----------------------
//	|V V|F F F F|L L| track number (uvarint, 1-4 bytes) | RTP packet ...
//	+-+-+-+-+-+-+-+-+----------------------+----------------------
//
//	V: frame version, FrameVersion (1). Another value: the datagram is
//	   dropped and counted as malformed.
//	F: flags, reserved: sent as zero, ignored on receipt (a later version
//	   may define them without a new ALPN).
//	L: simulcast layer (0 = lowest; 0 for audio and single-layer video).
//
// The RTP packet is the bridge's plain RTP (SRTP ends at each bridge; QUIC
// encrypts the hop) with its original sequence number, so the receiving
// bridge detects loss from sequence gaps and NACKs upstream.

const (
	// FrameVersion is the datagram header version of ProtoV1.
	FrameVersion = 1
	// MaxLayer is the highest simulcast layer the header carries.
	MaxLayer = 3
	// MaxTrackNumber bounds link-local track numbers (4 varint bytes).
	MaxTrackNumber = 1<<28 - 1
	// MaxFrameHeader is the largest datagram header.
	MaxFrameHeader = 1 + 4
	// MaxRTPSize bounds the RTP packet carried in one datagram: a
	// browser's RTP fits in 1200 bytes, and QUIC's smallest datagram
	// payload (1280-byte packets) leaves room for a little more.
	MaxRTPSize = 1200 + 32

	frameVersionShift = 6
	frameFlagsMask    = 0x3c
	frameLayerMask    = 0x03
)

// FrameHeader is the header of one media datagram. The zero value is not a
// valid header: Track 0 is allowed, but the version comes from MarshalTo.
type FrameHeader struct {
	Track uint32 // link-local track number, from TrackPublished
	Layer uint8  // 0..MaxLayer
	Flags uint8  // reserved; bits outside F are dropped
}

// MarshalSize returns the encoded size of h.
func (h FrameHeader) MarshalSize() int {
	n := 1
	for v := h.Track; ; v >>= 7 {
		n++
		if v < 0x80 {
			return n
		}
	}
}

// MarshalTo writes h into buf and returns the number of bytes written. It
// does not allocate.
func (h FrameHeader) MarshalTo(buf []byte) (int, error) {
	if h.Track > MaxTrackNumber || h.Layer > MaxLayer {
		return 0, ErrMalformed
	}
	if len(buf) < h.MarshalSize() {
		return 0, ErrShortBuffer
	}
	buf[0] = FrameVersion<<frameVersionShift | h.Flags&frameFlagsMask | h.Layer
	return 1 + binary.PutUvarint(buf[1:], uint64(h.Track)), nil
}

// Unmarshal parses the header at the start of buf and returns its length;
// the RTP packet is buf[n:]. It does not allocate.
func (h *FrameHeader) Unmarshal(buf []byte) (int, error) {
	if len(buf) < 2 || buf[0]>>frameVersionShift != FrameVersion {
		return 0, ErrMalformed
	}
	v, n := binary.Uvarint(buf[1:min(len(buf), MaxFrameHeader)])
	if n <= 0 || v > MaxTrackNumber {
		return 0, ErrMalformed
	}
	h.Track = uint32(v)
	h.Layer = buf[0] & frameLayerMask
	h.Flags = buf[0] & frameFlagsMask
	return 1 + n, nil
}
