package relay

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestFrameHeaderRoundTrip(t *testing.T) {
	for _, h := range []FrameHeader{
		{Track: 0, Layer: 0},
		{Track: 127, Layer: 2},
		{Track: 128, Layer: 1, Flags: 0x04},
		{Track: MaxTrackNumber, Layer: MaxLayer},
	} {
		buf := make([]byte, MaxFrameHeader)
		n, err := h.MarshalTo(buf)
		if err != nil || n != h.MarshalSize() {
			t.Fatalf("%+v: MarshalTo = %d, %v; size %d", h, n, err, h.MarshalSize())
		}
		var g FrameHeader
		m, err := g.Unmarshal(buf[:n])
		if err != nil || m != n || g != h {
			t.Fatalf("%+v: Unmarshal = %+v, %d, %v", h, g, m, err)
		}
	}
}

func TestFrameHeaderRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":         {},
		"no track":      {FrameVersion << 6},
		"version 0":     {0x00, 1},
		"version 2":     {2 << 6, 1},
		"varint cut":    {FrameVersion << 6, 0x80},
		"track too big": {FrameVersion << 6, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		var h FrameHeader
		if _, err := h.Unmarshal(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
	if _, err := (FrameHeader{Track: MaxTrackNumber + 1}).MarshalTo(make([]byte, 8)); err == nil {
		t.Error("MarshalTo accepted a track number above MaxTrackNumber")
	}
	if _, err := (FrameHeader{Track: 300}).MarshalTo(make([]byte, 2)); !errors.Is(err, ErrShortBuffer) {
		t.Errorf("short buffer: err = %v", err)
	}
}

func TestFrameHeaderNoAlloc(t *testing.T) {
	buf := make([]byte, 64)
	h := FrameHeader{Track: 4000, Layer: 2}
	var g FrameHeader
	if a := testing.AllocsPerRun(100, func() {
		n, _ := h.MarshalTo(buf)
		g.Unmarshal(buf[:n])
	}); a != 0 {
		t.Fatalf("header marshal+unmarshal allocates %.1f times", a)
	}
}

func FuzzFrameHeader(f *testing.F) {
	f.Add([]byte{0x40, 0x00, 0x80, 0x00})
	f.Add([]byte{0x46, 0x81, 0x01, 0x80, 0x60, 0x00, 0x01})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h FrameHeader
		n, err := h.Unmarshal(b)
		if err != nil {
			return
		}
		if n > len(b) || n > MaxFrameHeader {
			t.Fatalf("header length %d of %d bytes", n, len(b))
		}
		buf := make([]byte, MaxFrameHeader)
		m, err := h.MarshalTo(buf)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", h, err)
		}
		var g FrameHeader
		if _, err := g.Unmarshal(buf[:m]); err != nil || g != h {
			t.Fatalf("round trip %+v -> %+v, %v", h, g, err)
		}
	})
}

// sampleMessages is one message of every type, also the fuzz seeds.
func sampleMessages() []Message {
	return []Message{
		{Type: MsgHello, Version: 1, Node: "node-a"},
		{Type: MsgRoomAttach, Conference: "c0ffee"},
		{Type: MsgRoomDetach, Conference: "c0ffee"},
		{Type: MsgTrackPublished, Conference: "c0ffee", Track: 7, TrackID: "t1", Participant: "p1", Kind: KindVideo,
			Mime: "video/VP8", ClockRate: 90000, PayloadType: 96, Layers: []Layer{{RID: "q", Height: 180}, {RID: "h", Height: 360, Bitrate: 500_000}, {RID: "f", Inactive: true}}, Flags: TrackSimulcast | TrackE2EE},
		{Type: MsgTrackPublished, Conference: "c", Track: 8, TrackID: "a", Participant: "p", Kind: KindAudio,
			Mime: "audio/opus", ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1", PayloadType: 111, AudioLevel: 1, Layers: []Layer{{}}},
		{Type: MsgTrackUnpublished, Track: 7},
		{Type: MsgSubscribe, Track: 7, Layer: 2},
		{Type: MsgUnsubscribe, Track: 7},
		{Type: MsgKeyframeRequest, Track: 7, Layer: 1},
		{Type: MsgNACK, Track: 7, Layer: 0, Seqs: []uint16{1, 2, 65535}},
		{Type: MsgLinkStats, RTT: 12345 * time.Microsecond, LossPermille: 3, Bitrate: 2_500_000},
		{Type: MsgRoomMessage, Conference: "c0ffee", Data: []byte(`{"t":"chat"}`)},
		{Type: MsgTrackLayers, Track: 7, Layers: []Layer{{Height: 180, Bitrate: 150_000}, {Height: 360, Inactive: true}, {Inactive: true}}},
	}
}

func TestControlRoundTrip(t *testing.T) {
	var stream []byte
	msgs := sampleMessages()
	for i := range msgs {
		var err error
		if stream, err = msgs[i].Append(stream); err != nil {
			t.Fatalf("%v: %v", msgs[i].Type, err)
		}
	}
	// An unknown ignorable message in the middle is read and skipped by
	// the caller; an unknown essential one is malformed.
	stream = append(stream, 0x90, 0, 2, 'h', 'i')
	r := NewControlReader(bytes.NewReader(stream))
	for i := range msgs {
		var m Message
		if err := r.Read(&m); err != nil {
			t.Fatalf("read %v: %v", msgs[i].Type, err)
		}
		if !reflect.DeepEqual(m, msgs[i]) {
			t.Fatalf("got %+v\nwant %+v", m, msgs[i])
		}
	}
	var m Message
	if err := r.Read(&m); err != nil || m.Type != 0x90 {
		t.Fatalf("ignorable: %+v, %v", m, err)
	}
}

func TestControlRejects(t *testing.T) {
	long := string(make([]byte, MaxConferenceID+1))
	for _, m := range []Message{
		{Type: MsgRoomAttach, Conference: long},
		{Type: MsgNACK, Seqs: make([]uint16, MaxNACKs+1)},
		{Type: MsgRoomMessage, Data: make([]byte, MaxRoomMessage+1)},
		{Type: MsgSubscribe, Layer: MaxLayer + 1},
		{Type: MsgTrackPublished, Layers: make([]Layer, MaxLayers+1)},
		{Type: 0x42},
	} {
		if b, err := m.Append([]byte{9}); err == nil || len(b) != 1 {
			t.Errorf("%v: Append accepted an out-of-bounds message", m.Type)
		}
	}
	for name, c := range map[string]struct {
		typ  MsgType
		body []byte
	}{
		"unknown essential type": {0x42, nil},
		"truncated string":       {MsgRoomAttach, []byte{5, 'a'}},
		"conference too long":    {MsgRoomAttach, append([]byte{0x81, 0x01}, make([]byte, 129)...)},
		"trailing bytes":         {MsgUnsubscribe, []byte{1, 0}},
		"layer out of range":     {MsgSubscribe, []byte{1, 9}},
		"nack count too big":     {MsgNACK, []byte{1, 0, MaxNACKs + 1}},
		"nack cut":               {MsgNACK, []byte{1, 0, 3, 0, 1}},
		"loss above 1000":        {MsgLinkStats, []byte{1, 0xe9, 0x07, 1}},
		"empty hello":            {MsgHello, nil},
	} {
		var m Message
		if err := m.Unmarshal(c.typ, c.body); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A truncated stream is an io error, not a message.
	b, _ := (&Message{Type: MsgRoomAttach, Conference: "abc"}).Append(nil)
	var m Message
	if err := NewControlReader(bytes.NewReader(b[:len(b)-1])).Read(&m); err == nil {
		t.Error("truncated stream read as a message")
	}
}

func FuzzControl(f *testing.F) {
	for _, m := range sampleMessages() {
		b, _ := m.Append(nil)
		f.Add(b)
	}
	f.Add([]byte{0x09, 0x00, 0x03, 0x01, 0x00, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < controlHeader {
			return
		}
		var m Message
		if err := m.Unmarshal(MsgType(b[0]), b[controlHeader:]); err != nil {
			return
		}
		enc, err := m.Append(nil)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		var g Message
		if err := NewControlReader(bytes.NewReader(enc)).Read(&g); err != nil {
			t.Fatalf("re-decode %+v: %v", m, err)
		}
		if !reflect.DeepEqual(normalize(g), normalize(m)) {
			t.Fatalf("round trip\n%+v\n%+v", m, g)
		}
	})
}

// normalize makes empty and nil slices equal for comparison.
func normalize(m Message) Message {
	if len(m.Layers) == 0 {
		m.Layers = nil
	}
	if len(m.Seqs) == 0 {
		m.Seqs = nil
	}
	if len(m.Data) == 0 {
		m.Data = nil
	}
	return m
}
