package client

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// capture is a TrackLocalWriter that keeps what a track writes.
type capture struct{ pkts []rtp.Packet }

func (c *capture) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	c.pkts = append(c.pkts, rtp.Packet{Header: h.Clone(), Payload: append([]byte(nil), payload...)})
	return len(payload), nil
}
func (c *capture) Write(b []byte) (int, error) { return len(b), nil }

// bindCtx is a minimal TrackLocalContext for Bind.
type bindCtx struct {
	webrtc.TrackLocalContext
	w *capture
}

func (b bindCtx) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96},
		{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111},
	}
}
func (b bindCtx) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (b bindCtx) SSRC() webrtc.SSRC                                      { return 1234 }
func (b bindCtx) WriteStream() webrtc.TrackLocalWriter                   { return b.w }
func (b bindCtx) ID() string                                             { return "ctx" }
func (b bindCtx) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (b bindCtx) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }

// TestRunSimulcastShape checks the packets a receiver parses: frame sizes
// near the layer's bit rate, keyframes first and bigger, per-layer
// sequence without gaps, frames split with S bit and marker.
func TestRunSimulcastShape(t *testing.T) {
	layers := BrowserLayers
	var tracks []*webrtc.TrackLocalStaticRTP
	var caps []*capture
	for _, l := range layers {
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s", webrtc.WithRTPStreamID(l.RID))
		if err != nil {
			t.Fatal(err)
		}
		c := &capture{}
		if _, err := tr.Bind(bindCtx{w: c}); err != nil {
			t.Fatal(err)
		}
		tracks = append(tracks, tr)
		caps = append(caps, c)
	}
	s := &Synth{Sender: 7}
	ctx, cancel := context.WithTimeout(context.Background(), 1*time.Second)
	defer cancel()
	s.RunSimulcast(ctx, tracks, VideoOptions{Layers: layers, Seed: 1})
	for i, c := range caps {
		if len(c.pkts) == 0 {
			t.Fatalf("layer %d: nothing sent", i)
		}
		frames := map[uint32][]VideoInfo{}
		var seq uint32
		for j, p := range c.pkts {
			v, ok := ParseVideo(p.Payload)
			if !ok {
				t.Fatalf("layer %d packet %d does not parse", i, j)
			}
			if v.Sender != 7 || v.Layer != i || v.Seq != seq {
				t.Fatalf("layer %d packet %d: %+v (want seq %d)", i, j, v, seq)
			}
			seq++
			if first := v.Index == 0; first != (p.Payload[0]&0x10 != 0) {
				t.Fatalf("S bit on packet %d of a frame", v.Index)
			}
			if p.Marker != (v.Index == v.Count-1) {
				t.Fatalf("marker on packet %d of %d", v.Index, v.Count)
			}
			if v.Index == 0 && IsVP8Keyframe(p.Payload) != v.Key {
				t.Fatalf("VP8 keyframe bit disagrees with the tail")
			}
			frames[v.Frame] = append(frames[v.Frame], v)
		}
		var bytes, keyBytes, n int
		for f, vs := range frames {
			if len(vs) != vs[0].Count {
				t.Fatalf("frame %d: %d of %d packets", f, len(vs), vs[0].Count)
			}
			if f == 0 && !vs[0].Key {
				t.Fatalf("first frame is not a keyframe")
			}
		}
		for _, p := range c.pkts {
			v, _ := ParseVideo(p.Payload)
			if v.Frame == 0 {
				keyBytes += len(p.Payload)
			} else {
				bytes += len(p.Payload)
			}
		}
		n = len(frames) - 1
		if n < 10 {
			t.Fatalf("layer %d: only %d frames in a second", i, n+1)
		}
		avg := float64(bytes) / float64(n)
		want := float64(layers[i].Bitrate) / 8 / 30
		if avg < 0.75*want || avg > 1.25*want {
			t.Errorf("layer %d: %.0f bytes per frame, want about %.0f", i, avg, want)
		}
		if float64(keyBytes) < 2.5*avg {
			t.Errorf("layer %d: keyframe %d bytes, not much bigger than %.0f", i, keyBytes, avg)
		}
	}
	// Dropping: produced and counted, not written.
	s2 := &Synth{Sender: 8}
	s2.Drop.Store(true)
	c := &capture{}
	tr, _ := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	tr.Bind(bindCtx{w: c})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	s2.RunSimulcast(ctx2, []*webrtc.TrackLocalStaticRTP{tr}, VideoOptions{Layers: layers[:1]})
	if len(c.pkts) != 0 || s2.Dropped.Load() == 0 {
		t.Errorf("drop: %d written, %d dropped", len(c.pkts), s2.Dropped.Load())
	}
}

func TestRunTalk(t *testing.T) {
	tr, err := NewAudio("a", "s")
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{}
	if _, err := tr.Bind(bindCtx{w: c}); err != nil {
		t.Fatal(err)
	}
	s := &Synth{Sender: 3, Ext: func() *HeaderExt { return &HeaderExt{AudioLevel: 5} }}
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	s.RunTalk(ctx, tr, AudioOptions{Talk: 0.5, Seed: 1})
	if len(c.pkts) < 20 {
		t.Fatalf("%d packets in 600 ms", len(c.pkts))
	}
	for i, p := range c.pkts {
		st, ok := ReadStamp(p.Payload[OpusStampOffset:])
		if !ok || st.Sender != 3 || st.Frame != uint32(i) {
			t.Fatalf("packet %d: stamp %+v", i, st)
		}
		lv := p.GetExtension(5)
		if len(lv) != 1 {
			t.Fatalf("packet %d: no audio level", i)
		}
		talking := lv[0]&0x80 != 0
		if talking && (len(p.Payload) != 80 || lv[0]&0x7f > 40) || !talking && (len(p.Payload) != 20 || lv[0] != 127) {
			t.Fatalf("packet %d: %d bytes with level %#x", i, len(p.Payload), lv[0])
		}
	}
}
