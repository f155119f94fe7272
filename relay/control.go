package relay

import (
	"encoding/binary"
	"io"
	"time"
)

// Control messages travel on each side's control stream (a QUIC
// unidirectional stream), one after another:
//
//	+--------+----------------+---------------------
//	| type   | length (u16 BE)| body (length bytes)
//	+--------+----------------+---------------------
//
// Bodies are fields in a fixed order per type: integers as uvarints, u8 as
// one byte, u16 as two bytes big-endian, strings and byte strings as a
// uvarint length then the bytes. Every length has a bound (the Max
// constants); a message that breaks one, does not parse, or leaves bytes
// unread is malformed, and the link is closed with that error (the peer
// redials and resynchronises). Types from 0x80 up are ignorable: a receiver
// that does not know one skips it, so a version can add optional messages
// without a new ALPN.
//
// Bodies per type (see Message for the meaning of each field):
//
//	Hello            version uvarint, node string
//	RoomAttach       conference string
//	RoomDetach       conference string
//	TrackPublished   conference string, track uvarint, track ID string,
//	                 participant string, kind u8, mime string, clock uvarint,
//	                 channels u8, fmtp string, payload type u8,
//	                 audio level extension ID u8,
//	                 layer count u8 then per layer: RID string,
//	                 height uvarint, bitrate uvarint, inactive u8; flags u8
//	TrackUnpublished track uvarint
//	Subscribe        track uvarint, layer u8
//	Unsubscribe      track uvarint
//	KeyframeRequest  track uvarint, layer u8
//	NACK             track uvarint, layer u8, count u8, seqs u16...
//	LinkStats        RTT µs uvarint, loss ‰ uvarint, bitrate bit/s uvarint
//	RoomMessage      conference string, data bytes
//	SubscribeLayers  track uvarint, layer set u8 (bit i: layer i; 0x80 type)
//	LayerCap         layer u8 (0x81 type)
//	TrackLayers      track uvarint, layer count u8 then per layer:
//	                 height uvarint, bitrate uvarint, inactive u8
//	                 (0x82 type)
//
// Layer sets (ignorable types, added in version 1 without a new ALPN). A
// node that wants several layers of a track sends Subscribe with the
// highest of them followed at once by SubscribeLayers with the whole set;
// Unsubscribe when it wants none. A receiver that knows SubscribeLayers
// subscribes exactly the layers of the set (each crosses the link once)
// and, once a peer has sent it one, ignores that peer's plain Subscribe
// messages on the link (each is followed by its set). A receiver that does
// not know it skips it and forwards the highest layer only, as the first
// version did; a sender that never sends it (the first version) is served
// the one layer of each Subscribe. LayerCap tells the receiving node the
// highest layer the sender forwards on the link now (its bandwidth
// estimate); the receiver treats higher layers of the link's tracks as
// inactive, so its subscribers move down to a layer that crosses. A node
// that does not know LayerCap skips it.

// MsgType is the type byte of a control message.
type MsgType uint8

// Control message types. New types are appended; 0x80 and up are ignorable.
const (
	MsgHello            MsgType = 0x01
	MsgRoomAttach       MsgType = 0x02
	MsgRoomDetach       MsgType = 0x03
	MsgTrackPublished   MsgType = 0x04
	MsgTrackUnpublished MsgType = 0x05
	MsgSubscribe        MsgType = 0x06
	MsgUnsubscribe      MsgType = 0x07
	MsgKeyframeRequest  MsgType = 0x08
	MsgNACK             MsgType = 0x09
	MsgLinkStats        MsgType = 0x0a
	MsgRoomMessage      MsgType = 0x0b

	msgIgnorable MsgType = 0x80

	// Ignorable additions (see "Layer sets" above).
	MsgSubscribeLayers MsgType = 0x80
	MsgLayerCap        MsgType = 0x81
	// MsgTrackLayers tells the peer that the layers of a track it imports
	// started or stopped flowing at the publisher's bridge (Chrome starts
	// its upper simulcast layers seconds after the first, as its bandwidth
	// estimate grows; an encoder drops layers under load). The count is
	// the track's layer count from TrackPublished; RIDs do not change.
	MsgTrackLayers MsgType = 0x82
)

// Bounds of control messages.
const (
	// MaxControlBody is the largest control message body.
	MaxControlBody = 65535
	// MaxRoomMessage is the largest opaque room message; the caller splits
	// larger payloads (a chat history) into several.
	MaxRoomMessage = 60000
	// MaxConferenceID bounds a conference ID.
	MaxConferenceID = 128
	// MaxNodeName bounds a node name.
	MaxNodeName = 128
	// MaxID bounds track and participant IDs.
	MaxID = 128
	// MaxMime bounds a codec MIME type, MaxFmtp its SDP fmtp line.
	MaxMime = 64
	MaxFmtp = 512
	// MaxLayers bounds simulcast layers of a track, MaxRID one RID.
	MaxLayers = MaxLayer + 1
	MaxRID    = 16
	// MaxNACKs bounds the sequence numbers of one NACK message.
	MaxNACKs = 64

	controlHeader = 3
)

// Track kinds on the wire.
const (
	KindAudio = 1
	KindVideo = 2
)

// Track flags on the wire.
const (
	TrackE2EE      = 0x01 // payload is end-to-end encrypted by the clients
	TrackSimulcast = 0x02 // the track has RIDs layers
)

// Message is one control message. Only the fields of its Type are encoded;
// see the table above.
type Message struct {
	Type MsgType

	Version    uint64 // Hello
	Node       string // Hello
	Conference string // RoomAttach, RoomDetach, TrackPublished, RoomMessage

	Track    uint32 // link-local track number
	Layer    uint8
	LayerSet uint8 // SubscribeLayers: bit i for layer i, i <= MaxLayer

	// TrackPublished
	TrackID     string
	Participant string
	Kind        uint8 // KindAudio, KindVideo
	Mime        string
	ClockRate   uint32
	Channels    uint8
	Fmtp        string
	PayloadType uint8
	AudioLevel  uint8 // RFC 6464 header extension ID, 0: none
	Layers      []Layer
	Flags       uint8 // TrackE2EE, TrackSimulcast

	Seqs []uint16 // NACK

	// LinkStats
	RTT          time.Duration // microsecond resolution on the wire
	LossPermille uint32        // 0..1000
	Bitrate      uint64        // bits per second

	Data []byte // RoomMessage
}

// Layer describes one simulcast layer in TrackPublished.
type Layer struct {
	RID      string
	Height   uint32 // pixels; 0 unknown
	Bitrate  uint64 // bits/s at the publisher's bridge; 0 unknown
	Inactive bool   // the publisher sends nothing on it now
}

// Append encodes m, header included, after b.
func (m *Message) Append(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, byte(m.Type), 0, 0)
	var err error
	str := func(s string, max int) {
		if len(s) > max {
			err = ErrTooLarge
		}
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	track := func() {
		if m.Track > MaxTrackNumber {
			err = ErrMalformed
		}
		b = binary.AppendUvarint(b, uint64(m.Track))
	}
	layer := func() {
		if m.Layer > MaxLayer {
			err = ErrMalformed
		}
		b = append(b, m.Layer)
	}
	// layerState is a layer's height, bitrate and activity, in
	// TrackPublished and TrackLayers alike.
	layerState := func(l Layer) {
		if l.Height > 1<<16 || l.Bitrate > 1<<40 {
			err = ErrMalformed
		}
		b = binary.AppendUvarint(b, uint64(l.Height))
		b = binary.AppendUvarint(b, l.Bitrate)
		var inactive byte
		if l.Inactive {
			inactive = 1
		}
		b = append(b, inactive)
	}
	switch m.Type {
	case MsgHello:
		if m.Version > 1<<32-1 {
			err = ErrMalformed
		}
		b = binary.AppendUvarint(b, m.Version)
		str(m.Node, MaxNodeName)
	case MsgRoomAttach, MsgRoomDetach:
		str(m.Conference, MaxConferenceID)
	case MsgTrackPublished:
		str(m.Conference, MaxConferenceID)
		track()
		str(m.TrackID, MaxID)
		str(m.Participant, MaxID)
		b = append(b, m.Kind)
		str(m.Mime, MaxMime)
		b = binary.AppendUvarint(b, uint64(m.ClockRate))
		b = append(b, m.Channels)
		str(m.Fmtp, MaxFmtp)
		b = append(b, m.PayloadType, m.AudioLevel)
		if len(m.Layers) > MaxLayers {
			err = ErrTooLarge
		}
		b = append(b, byte(len(m.Layers)))
		for _, l := range m.Layers {
			str(l.RID, MaxRID)
			layerState(l)
		}
		b = append(b, m.Flags)
	case MsgTrackUnpublished, MsgUnsubscribe:
		track()
	case MsgSubscribe, MsgKeyframeRequest:
		track()
		layer()
	case MsgSubscribeLayers:
		track()
		if m.LayerSet >= 1<<MaxLayers {
			err = ErrMalformed
		}
		b = append(b, m.LayerSet)
	case MsgLayerCap:
		layer()
	case MsgTrackLayers:
		track()
		if len(m.Layers) > MaxLayers {
			err = ErrTooLarge
		}
		b = append(b, byte(len(m.Layers)))
		for _, l := range m.Layers {
			layerState(l)
		}
	case MsgNACK:
		track()
		layer()
		if len(m.Seqs) > MaxNACKs {
			err = ErrTooLarge
		}
		b = append(b, byte(len(m.Seqs)))
		for _, s := range m.Seqs {
			b = binary.BigEndian.AppendUint16(b, s)
		}
	case MsgLinkStats:
		if m.LossPermille > 1000 || m.RTT < 0 || m.RTT > time.Hour || m.Bitrate > 1<<50 {
			err = ErrMalformed
		}
		b = binary.AppendUvarint(b, uint64(m.RTT/time.Microsecond))
		b = binary.AppendUvarint(b, uint64(m.LossPermille))
		b = binary.AppendUvarint(b, m.Bitrate)
	case MsgRoomMessage:
		str(m.Conference, MaxConferenceID)
		if len(m.Data) > MaxRoomMessage {
			err = ErrTooLarge
		}
		b = binary.AppendUvarint(b, uint64(len(m.Data)))
		b = append(b, m.Data...)
	default:
		if m.Type < msgIgnorable {
			err = ErrMalformed
		}
		b = append(b, m.Data...)
	}
	body := len(b) - start - controlHeader
	if err == nil && body > MaxControlBody {
		err = ErrTooLarge
	}
	if err != nil {
		return b[:start], err
	}
	binary.BigEndian.PutUint16(b[start+1:], uint16(body))
	return b, nil
}

// decoder reads the fields of one body; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) uvarint(max uint64) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(ErrMalformed)
		return 0
	}
	d.b = d.b[n:]
	if v > max {
		d.fail(ErrMalformed)
		return 0
	}
	return v
}

func (d *decoder) u8() uint8 {
	if len(d.b) < 1 {
		d.fail(ErrMalformed)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) u16() uint16 {
	if len(d.b) < 2 {
		d.fail(ErrMalformed)
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *decoder) bytes(max int) []byte {
	n := d.uvarint(uint64(MaxControlBody))
	if d.err != nil {
		return nil
	}
	if n > uint64(max) {
		d.fail(ErrTooLarge)
		return nil
	}
	if uint64(len(d.b)) < n {
		d.fail(ErrMalformed)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(max int) string { return string(d.bytes(max)) }

func (d *decoder) track() uint32 { return uint32(d.uvarint(MaxTrackNumber)) }

func (d *decoder) layer() uint8 {
	l := d.u8()
	if l > MaxLayer {
		d.fail(ErrMalformed)
	}
	return l
}

// Unmarshal decodes the body of a message of type typ into m. Data of a
// RoomMessage aliases body; strings are copies.
func (m *Message) Unmarshal(typ MsgType, body []byte) error {
	*m = Message{Type: typ}
	if len(body) > MaxControlBody {
		return ErrTooLarge
	}
	d := &decoder{b: body}
	switch typ {
	case MsgHello:
		m.Version = d.uvarint(1<<32 - 1)
		m.Node = d.str(MaxNodeName)
	case MsgRoomAttach, MsgRoomDetach:
		m.Conference = d.str(MaxConferenceID)
	case MsgTrackPublished:
		m.Conference = d.str(MaxConferenceID)
		m.Track = d.track()
		m.TrackID = d.str(MaxID)
		m.Participant = d.str(MaxID)
		m.Kind = d.u8()
		m.Mime = d.str(MaxMime)
		m.ClockRate = uint32(d.uvarint(1<<32 - 1))
		m.Channels = d.u8()
		m.Fmtp = d.str(MaxFmtp)
		m.PayloadType = d.u8()
		m.AudioLevel = d.u8()
		n := d.u8()
		if n > MaxLayers {
			d.fail(ErrTooLarge)
		}
		for i := 0; i < int(n) && d.err == nil; i++ {
			var l Layer
			l.RID = d.str(MaxRID)
			l.Height = uint32(d.uvarint(1 << 16))
			l.Bitrate = d.uvarint(1 << 40)
			l.Inactive = d.u8()&1 != 0
			m.Layers = append(m.Layers, l)
		}
		m.Flags = d.u8()
	case MsgTrackUnpublished, MsgUnsubscribe:
		m.Track = d.track()
	case MsgSubscribe, MsgKeyframeRequest:
		m.Track = d.track()
		m.Layer = d.layer()
	case MsgSubscribeLayers:
		m.Track = d.track()
		m.LayerSet = d.u8()
		if m.LayerSet >= 1<<MaxLayers {
			d.fail(ErrMalformed)
		}
	case MsgLayerCap:
		m.Layer = d.layer()
	case MsgTrackLayers:
		m.Track = d.track()
		n := d.u8()
		if n > MaxLayers {
			d.fail(ErrTooLarge)
		}
		for i := 0; i < int(n) && d.err == nil; i++ {
			var l Layer
			l.Height = uint32(d.uvarint(1 << 16))
			l.Bitrate = d.uvarint(1 << 40)
			l.Inactive = d.u8()&1 != 0
			m.Layers = append(m.Layers, l)
		}
	case MsgNACK:
		m.Track = d.track()
		m.Layer = d.layer()
		n := d.u8()
		if n > MaxNACKs {
			d.fail(ErrTooLarge)
		}
		if d.err == nil && len(d.b) < 2*int(n) {
			d.fail(ErrMalformed)
		}
		if d.err == nil && n > 0 {
			m.Seqs = make([]uint16, n)
			for i := range m.Seqs {
				m.Seqs[i] = d.u16()
			}
		}
	case MsgLinkStats:
		m.RTT = time.Duration(d.uvarint(uint64(time.Hour/time.Microsecond))) * time.Microsecond
		m.LossPermille = uint32(d.uvarint(1000))
		m.Bitrate = d.uvarint(1 << 50)
	case MsgRoomMessage:
		m.Conference = d.str(MaxConferenceID)
		m.Data = d.bytes(MaxRoomMessage)
	default:
		if typ < msgIgnorable {
			return ErrMalformed
		}
		m.Data = body
		return nil
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return ErrMalformed
	}
	return nil
}

// ControlReader reads control messages from one stream into a buffer it
// owns. Not safe for concurrent use.
type ControlReader struct {
	r   io.Reader
	buf [controlHeader + MaxControlBody]byte
}

// NewControlReader returns a reader of the control messages on r.
func NewControlReader(r io.Reader) *ControlReader { return &ControlReader{r: r} }

// Read reads the next message into m. A RoomMessage's Data is valid until
// the next Read. An io error is returned as is; a malformed message as
// ErrMalformed or ErrTooLarge.
func (c *ControlReader) Read(m *Message) error {
	if _, err := io.ReadFull(c.r, c.buf[:controlHeader]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint16(c.buf[1:controlHeader]))
	body := c.buf[controlHeader : controlHeader+n]
	if _, err := io.ReadFull(c.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return m.Unmarshal(MsgType(c.buf[0]), body)
}
