package signaling_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// publisher is a participant that sends stamped Opus audio and three-layer
// simulcast VP8 and records what it receives from the others.
type publisher struct {
	tag uint32
	c   *client.Client
	src *client.Synth

	mu       sync.Mutex
	got      map[string]*received // by kind+sender tag
	keyframe map[uint32]bool      // sender tag → a video keyframe arrived
}

type received struct {
	packets int
	intact  int // payloads that decode to a valid stamp of the expected size
}

func (p *publisher) onTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	go func() {
		for {
			pkt, _, err := t.ReadRTP()
			if err != nil {
				return
			}
			var stamp client.Stamp
			var ok, key bool
			var wantLen int
			switch t.Kind() {
			case webrtc.RTPCodecTypeAudio:
				stamp, ok = client.ReadStamp(pkt.Payload[client.OpusStampOffset:])
				wantLen = 80
			default:
				var v client.VideoInfo
				v, ok = client.ParseVideo(pkt.Payload)
				stamp = v.Stamp
				key = client.IsVP8Keyframe(pkt.Payload)
				// A frame's first packet carries the synthetic frame header
				// with the keyframe start code; the bytes after the stamp
				// and the packet tail are zero padding.
				tail := client.VP8StampOffset + client.StampSize + client.VideoTailSize
				ok = ok && (v.Index > 0 || bytes.Equal(pkt.Payload[4:7], []byte{0x9d, 0x01, 0x2a})) &&
					bytes.Count(pkt.Payload[tail:], []byte{0}) == len(pkt.Payload)-tail
			}
			p.mu.Lock()
			k := fmt.Sprintf("%s/%d", t.Kind(), stamp.Sender)
			r := p.got[k]
			if r == nil {
				r = &received{}
				p.got[k] = r
			}
			r.packets++
			intact := ok && (wantLen == 0 || len(pkt.Payload) == wantLen)
			if intact {
				r.intact++
			}
			if key {
				p.keyframe[stamp.Sender] = true
			}
			p.mu.Unlock()
		}
	}()
}

func (p *publisher) count(kind string, from uint32) (packets, intact int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.got[fmt.Sprintf("%s/%d", kind, from)]
	if r == nil {
		return 0, 0
	}
	return r.packets, r.intact
}

func (p *publisher) gotKeyframe(from uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keyframe[from]
}

// mediaLayers are three simulcast layers of about 150, 400 and 1000 bytes
// per frame at 30 fps: one packet per frame but keyframes, which span
// several packets.
var mediaLayers = []client.SynthLayer{
	{RID: "q", Width: 320, Height: 180, Bitrate: 150 * 8 * 30},
	{RID: "h", Width: 640, Height: 360, Bitrate: 400 * 8 * 30},
	{RID: "f", Width: 1280, Height: 720, Bitrate: 1000 * 8 * 30},
}

func startPublisher(ctx context.Context, t *testing.T, n *node, room string, tag uint32) *publisher {
	t.Helper()
	p := &publisher{tag: tag, got: map[string]*received{}, keyframe: map[uint32]bool{}, src: &client.Synth{Sender: tag}}
	stream := fmt.Sprintf("s%d", tag)
	audio, err := client.NewAudio("a", stream)
	if err != nil {
		t.Fatal(err)
	}
	video, err := client.NewSimulcastVideo("v", stream, mediaLayers)
	if err != nil {
		t.Fatal(err)
	}
	p.c = join(t, n, room, client.Options{
		Name:              fmt.Sprintf("P%d", tag),
		Tracks:            []webrtc.TrackLocal{audio},
		Simulcast:         video,
		OnTrack:           p.onTrack,
		OnKeyframeRequest: p.src.RequestKeyframe,
	})
	p.src.Ext = p.c.Ext
	// Always talking, so that every audio packet has the talk size.
	go p.src.RunTalk(ctx, audio, client.AudioOptions{TalkBytes: 80, SilenceBytes: 80, Talk: 1})
	go p.src.RunSimulcast(ctx, video, client.VideoOptions{Layers: mediaLayers})
	// Show every remote video at full size once it is announced.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-p.c.Events():
				if !ok {
					return
				}
				if m.Type == wire.TypeTrackPublished && m.Track.Kind == wire.KindVideo {
					p.c.Send(ctx, &wire.Message{Type: wire.TypePrefs, TrackID: m.Track.ID, MaxHeight: 720})
				}
			}
		}
	}()
	for _, tr := range p.c.Welcome.Tracks {
		if tr.Kind == wire.KindVideo {
			p.c.Send(ctx, &wire.Message{Type: wire.TypePrefs, TrackID: tr.ID, MaxHeight: 720})
		}
	}
	return p
}

// TestMeetingMedia: three participants publish audio and simulcast video and
// each receives the others' media with payloads intact; a late joiner gets
// a keyframe; leaving releases everything.
func TestMeetingMedia(t *testing.T) {
	if testing.Short() {
		t.Skip("media test skipped in -short mode")
	}
	before := runtime.NumGoroutine()
	// The meeting runs in a subtest so that its node and clients are closed
	// (subtest cleanups) before the leak check below.
	t.Run("meeting", func(t *testing.T) {
		n := startNode(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		room := roomname.New()

		var ps []*publisher
		for tag := uint32(1); tag <= 3; tag++ {
			ps = append(ps, startPublisher(ctx, t, n, room, tag))
		}
		for _, p := range ps {
			for _, o := range ps {
				if o == p {
					continue
				}
				for _, kind := range []string{"audio", "video"} {
					waitForf(t, 30*time.Second, func() string {
						return fmt.Sprintf("P%d receives %s of P%d (intact/received: %v)", p.tag, kind, o.tag, p.debug())
					}, func() bool {
						n, intact := p.count(kind, o.tag)
						return n >= 20 && intact == n
					})
				}
			}
			// Nothing of its own comes back.
			if n, _ := p.count("video", p.tag); n != 0 {
				t.Errorf("P%d received %d packets of its own video", p.tag, n)
			}
		}

		// A late joiner that publishes nothing gets a keyframe from everyone
		// (the bridge asks the publishers for one on its behalf).
		late := &publisher{tag: 99, got: map[string]*received{}, keyframe: map[uint32]bool{}}
		late.c = join(t, n, room, client.Options{Name: "Late", OnTrack: late.onTrack})
		for _, tr := range late.c.Welcome.Tracks {
			if tr.Kind == wire.KindVideo {
				late.c.Send(ctx, &wire.Message{Type: wire.TypePrefs, TrackID: tr.ID, MaxHeight: 720})
			}
		}
		for _, o := range ps {
			waitFor(t, 30*time.Second, fmt.Sprintf("late joiner's keyframe from P%d", o.tag), func() bool {
				return late.gotKeyframe(o.tag)
			})
		}
		// Everyone talks, so there is a dominant speaker; the late joiner
		// is told who it is without waiting for a change.
		sp := nextEvent(t, late.c, wire.TypeSpeaker)
		var known bool
		for _, o := range ps {
			known = known || sp.Participant == o.c.Welcome.Participant
		}
		if !known {
			t.Errorf("late joiner's speaker %q is none of the publishers", sp.Participant)
		}

		for _, p := range append(ps, late) {
			p.c.Leave(ctx)
		}
		waitFor(t, 15*time.Second, "room deleted", func() bool {
			r, _ := n.Dir.Rooms(ctx)
			return r == 0
		})
		cancel()
	})
	waitFor(t, 20*time.Second, "goroutines to exit", func() bool {
		return runtime.NumGoroutine() <= before+2
	})
}

func (p *publisher) debug() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := ""
	for k, r := range p.got {
		s += fmt.Sprintf("%s:%d/%d ", k, r.intact, r.packets)
	}
	return s
}
