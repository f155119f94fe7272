package relay

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
)

// Inter-bridge bytes of one meeting of 3 bridges × 10 participants, with
// the demand-driven cascade against a forward-everything cascade (every
// layer of every track to every other bridge, Jitsi's model). Commands
// and results: docs/benchmarks.md, "Cascade".
//
// Every participant publishes Opus audio (50 packets/s, 112-byte packets,
// no DTX) and a three-layer VP8 simulcast camera at 25 frames/s: layer 0
// one 700-byte packet per frame (~140 kbit/s), layer 1 two of 1,100 bytes
// (~440 kbit/s), layer 2 six of 1,150 bytes (~1.4 Mbit/s): Chrome's 180p,
// 360p and 720p ladder.
//
// Demand, as a last-N meeting of 30 has it: six recent speakers, two on
// each bridge (cascadeSpeakers). Each participant receives
//   - the active speaker's video at layer 2 (stage),
//   - the other five recent speakers' video (last-N 6) at layer 0, or
//     layer 1 for the participants with a large grid (every third),
//   - the five most recent speakers' audio (the bridge's audio last-N),
//   - two participants per bridge pin one participant of another bridge
//     who is not a speaker, at layer 1.
//
// Only subscriptions to remote tracks are made: local ones do not change
// what crosses the links. In forward-everything mode nobody subscribes;
// cascadeForwardAll sends every layer of every track on every link, as
// the bridges of a forward-everything cascade do whatever the demand.
// The ratio is taken per byte the sources published, so that sources
// falling behind their ticks on a busy machine do not skew it.

const (
	cascadeBridges      = 3
	cascadeParticipants = 10 // per bridge
	cascadeFPS          = 25
)

// cascadeLayerPackets and cascadeLayerSize shape the simulcast ladder:
// packets per frame and bytes per packet (RTP header included).
var (
	cascadeLayerPackets = [3]int{1, 2, 6}
	cascadeLayerSize    = [3]int{700, 1100, 1150}
)

// cascadeSpeakers are the last-N (6) recent speakers, most recent first:
// [bridge, participant]. The first is the active speaker; the first five
// are heard.
var cascadeSpeakers = [][2]int{{0, 0}, {1, 0}, {2, 0}, {0, 1}, {1, 1}, {2, 1}}

func cascadePID(n, i int) string { return fmt.Sprintf("p%d-%d", n, i) }

// cascadeSource is one participant's camera and microphone on its bridge.
type cascadeSource struct {
	audio, video *bridge.Publication
	aseq         uint16
	vseq         [3]uint16
	frame        uint32
	key          atomic.Uint32 // layers asked for a keyframe (bit per layer)
	buf          [1500]byte
}

// cascadeSent counts the RTP bytes all sources wrote into their bridges.
var cascadeSent atomic.Uint64

// camera is the video's TrackSource: keyframes on request.
type cascadeCamera struct{ s *cascadeSource }

func (c cascadeCamera) RequestKeyframe(layer int) {
	if layer >= 0 && layer < 3 {
		for {
			old := c.s.key.Load()
			if c.s.key.CompareAndSwap(old, old|1<<layer) {
				return
			}
		}
	}
}
func (cascadeCamera) RequestRetransmit(int, []uint16) {}
func (cascadeCamera) SetDemand(bridge.Demand)         {}

type cascadeMic struct{}

func (cascadeMic) RequestKeyframe(int)             {}
func (cascadeMic) RequestRetransmit(int, []uint16) {}
func (cascadeMic) SetDemand(bridge.Demand)         {}

func (s *cascadeSource) writeAudio(ssrc uint32) {
	s.aseq++
	h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: s.aseq, Timestamp: uint32(s.aseq) * 960, SSRC: ssrc}
	n, _ := h.MarshalTo(s.buf[:])
	clear(s.buf[n:112])
	s.audio.WriteRTP(0, s.buf[:112])
	cascadeSent.Add(112)
}

// writeFrame sends one frame on every layer; a layer asked for a
// keyframe (and the first frame) gets one.
func (s *cascadeSource) writeFrame(ssrc uint32) {
	s.frame++
	key := s.key.Swap(0)
	if s.frame == 1 {
		key = 7
	}
	for l := range 3 {
		for p := range cascadeLayerPackets[l] {
			s.vseq[l]++
			h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: s.vseq[l], Timestamp: s.frame * (90000 / cascadeFPS),
				SSRC: ssrc + uint32(l), Marker: p == cascadeLayerPackets[l]-1}
			n, _ := h.MarshalTo(s.buf[:])
			size := cascadeLayerSize[l]
			clear(s.buf[n:size])
			if p == 0 {
				// VP8 payload descriptor with S set, then the frame tag:
				// P bit clear on a keyframe.
				copy(s.buf[n:], []byte{0x10, 0x01, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01})
				if key&(1<<l) != 0 {
					s.buf[n+1] = 0x00
				}
			}
			s.video.WriteRTP(l, s.buf[:size])
			cascadeSent.Add(uint64(size))
		}
	}
}

// cascadeSink counts what one subscription delivers.
type cascadeSink struct{ pkts, bytes atomic.Int64 }

func (s *cascadeSink) WriteRTP(_ int, pkt []byte) {
	s.pkts.Add(1)
	s.bytes.Add(int64(len(pkt)))
}

// cascadeForwardAll is the test-only forward-everything switch: a bridge
// subscription per layer of every track exported on every link, whose
// sink queues the packets on the link as the export's own would.
type cascadeForwardAll struct {
	l     *link
	num   uint32
	layer int
}

func (f *cascadeForwardAll) WriteRTP(_ int, pkt []byte) { f.l.sendRTP(f.num, f.layer, pkt) }

type cascadeMeeting struct {
	nodes   [cascadeBridges]*node
	rooms   [cascadeBridges]*bridge.Room
	sources [cascadeBridges][cascadeParticipants]*cascadeSource
	sinks   []*cascadeSink
	subs    []*bridge.Subscription
}

func (m *cascadeMeeting) close() {
	for _, s := range m.subs {
		s.Close()
	}
}

func startCascadeMeeting(b *testing.B) *cascadeMeeting {
	ca := newTestCA(b)
	m := &cascadeMeeting{}
	for i := range cascadeBridges {
		m.nodes[i] = startNode(b, ca, fmt.Sprintf("n%d", i), rawSocket(nil))
	}
	for i, n := range m.nodes {
		var peers []*node
		for j, p := range m.nodes {
			if j != i {
				peers = append(peers, p)
			}
		}
		m.rooms[i] = n.attach(b, "conf", peers...)
	}
	layers := []bridge.LayerInfo{{RID: "q", Height: 180}, {RID: "h", Height: 360}, {RID: "f", Height: 720}}
	for n := range cascadeBridges {
		for i := range cascadeParticipants {
			pid := cascadePID(n, i)
			s := &cascadeSource{}
			var err error
			s.audio, err = m.rooms[n].Publish(bridge.PublishParams{TrackID: "a-" + pid, Participant: pid, Kind: webrtc.RTPCodecTypeAudio,
				Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}},
				cascadeMic{})
			if err != nil {
				b.Fatal(err)
			}
			s.video, err = m.rooms[n].Publish(bridge.PublishParams{TrackID: "v-" + pid, Participant: pid, Kind: webrtc.RTPCodecTypeVideo, Layers: layers,
				Codec: webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}},
				cascadeCamera{s})
			if err != nil {
				b.Fatal(err)
			}
			m.sources[n][i] = s
			m.nodes[n].relay.TrackPublished("conf", bridge.TrackInfo{ID: "a-" + pid, Participant: pid, Kind: webrtc.RTPCodecTypeAudio})
			m.nodes[n].relay.TrackPublished("conf", bridge.TrackInfo{ID: "v-" + pid, Participant: pid, Kind: webrtc.RTPCodecTypeVideo, Simulcast: true})
		}
	}
	waitFor(b, "every track imported on every other bridge", func() bool {
		for n := range cascadeBridges {
			for o := range cascadeBridges {
				if o == n {
					continue
				}
				for i := range cascadeParticipants {
					if !hasTrack(m.rooms[n], "a-"+cascadePID(o, i)) || !hasTrack(m.rooms[n], "v-"+cascadePID(o, i)) {
						return false
					}
				}
			}
		}
		return true
	})
	return m
}

// run sends media from every source until ctx ends: audio every 20 ms,
// a video frame every 40 ms.
func (m *cascadeMeeting) run(ctx context.Context) {
	var wg sync.WaitGroup
	for n := range cascadeBridges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(20 * time.Millisecond)
			defer t.Stop()
			for tick := 0; ; tick++ {
				for i, s := range m.sources[n] {
					ssrc := uint32(n*1000 + i*10)
					s.writeAudio(ssrc)
					if tick%(50/cascadeFPS) == 0 {
						s.writeFrame(ssrc + 1)
					}
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
	wg.Wait()
}

func (m *cascadeMeeting) subscribe(b *testing.B, n int, track string, layer int) {
	s := &cascadeSink{}
	sub, err := m.rooms[n].Subscribe(track, layer, s)
	if err != nil {
		b.Fatalf("subscribe %s on n%d: %v", track, n, err)
	}
	m.sinks = append(m.sinks, s)
	m.subs = append(m.subs, sub)
}

// demand makes the last-N meeting's subscriptions (see the top of the
// file).
func (m *cascadeMeeting) demand(b *testing.B) {
	for n := range cascadeBridges {
		for i := range cascadeParticipants {
			for k, sp := range cascadeSpeakers {
				if sp[0] == n {
					continue // local: does not cross a link
				}
				pid := cascadePID(sp[0], sp[1])
				layer := 0
				switch {
				case k == 0:
					layer = 2
				case i%3 == 0:
					layer = 1
				}
				m.subscribe(b, n, "v-"+pid, layer)
				if k < 5 {
					m.subscribe(b, n, "a-"+pid, 0)
				}
			}
			if i == 8 || i == 9 {
				// A pin of a non-speaker on the next bridge.
				m.subscribe(b, n, "v-"+cascadePID((n+1)%cascadeBridges, i-4), 1)
			}
		}
	}
}

// forwardAll is the forward-everything switch: every layer of every
// exported track on every link.
func (m *cascadeMeeting) forwardAll(b *testing.B) {
	for n, nd := range m.nodes {
		for o := range cascadeBridges {
			if o == n {
				continue
			}
			l := linkTo(nd, fmt.Sprintf("n%d", o))
			if l == nil {
				b.Fatalf("no link n%d-n%d", n, o)
			}
			l.mu.Lock()
			exps := make([]*exportTrack, 0, len(l.exports))
			for _, e := range l.exports {
				exps = append(exps, e)
			}
			l.mu.Unlock()
			if len(exps) != 2*cascadeParticipants {
				b.Fatalf("n%d exports %d tracks to n%d", n, len(exps), o)
			}
			for _, e := range exps {
				nl := 1
				if e.video {
					nl = 3
				}
				for layer := range nl {
					sub, err := m.rooms[n].Subscribe(e.key.trackID, layer, &cascadeForwardAll{l: l, num: e.num, layer: layer})
					if err != nil {
						b.Fatal(err)
					}
					m.subs = append(m.subs, sub)
				}
			}
		}
	}
}

// cascadeBytes is what crossed the links in a window.
type cascadeBytes struct {
	datagramBytes uint64 // relay datagrams, frame headers included
	datagrams     uint64
	quicBytes     uint64 // QUIC packets (acks and control included), UDP/IP headers excluded
	published     uint64 // RTP bytes the sources wrote into their bridges
}

func (m *cascadeMeeting) counted() cascadeBytes {
	c := cascadeBytes{published: cascadeSent.Load()}
	for n, nd := range m.nodes {
		st := nd.relay.Stats()
		c.datagramBytes += st.BytesOut
		c.datagrams += st.DatagramsOut
		for o := range cascadeBridges {
			if o == n {
				continue
			}
			if l := linkTo(nd, fmt.Sprintf("n%d", o)); l != nil {
				c.quicBytes += l.conn.ConnectionStats().BytesSent
			}
		}
	}
	return c
}

// cascadeWindow is how long media is measured in each mode.
const cascadeWindow = 4 * time.Second

// measure runs the meeting's media, waits until it flows (warm-up:
// keyframes, subscriptions upstream), then counts the bytes crossing the
// links during cascadeWindow.
func (m *cascadeMeeting) measure(b *testing.B, forwardAll bool) cascadeBytes {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	if forwardAll {
		m.forwardAll(b)
		time.Sleep(time.Second)
	} else {
		m.demand(b)
		waitFor(b, "every subscription receiving", func() bool {
			for _, s := range m.sinks {
				if s.pkts.Load() == 0 {
					return false
				}
			}
			return true
		})
		time.Sleep(time.Second) // layer switches settle
	}
	before := m.counted()
	start := time.Now()
	time.Sleep(cascadeWindow)
	after := m.counted()
	el := time.Since(start).Seconds()
	for _, nd := range m.nodes {
		st := nd.relay.Stats()
		b.Logf("%s: out %d datagrams, in %d, drops %v", nd.name, st.DatagramsOut, st.DatagramsIn, st.Drops)
	}
	// Normalise to the nominal window: a busy machine stretches sleeps.
	scale := cascadeWindow.Seconds() / el
	return cascadeBytes{
		datagramBytes: uint64(float64(after.datagramBytes-before.datagramBytes) * scale),
		datagrams:     uint64(float64(after.datagrams-before.datagrams) * scale),
		quicBytes:     uint64(float64(after.quicBytes-before.quicBytes) * scale),
		published:     uint64(float64(after.published-before.published) * scale),
	}
}

// BenchmarkCascadeBytes reports the bytes per second crossing the links
// of a 3 × 10 meeting, demand-driven and forward-everything, and their
// ratio (target at most 0.5).
func BenchmarkCascadeBytes(b *testing.B) {
	var dd cascadeBytes
	b.Run("demand", func(b *testing.B) {
		for b.Loop() {
			m := startCascadeMeeting(b)
			dd = m.measure(b, false)
			m.close()
		}
		reportCascade(b, dd)
	})
	b.Run("forward-all", func(b *testing.B) {
		var fe cascadeBytes
		for b.Loop() {
			m := startCascadeMeeting(b)
			fe = m.measure(b, true)
			m.close()
		}
		reportCascade(b, fe)
		if fe.datagramBytes > 0 && dd.datagramBytes > 0 && fe.published > 0 && dd.published > 0 {
			// Per byte published: a busy machine makes the sources fall
			// behind their 20 ms ticks by different amounts in each run.
			ratio := func(d, f uint64) float64 {
				return float64(d) / float64(dd.published) / (float64(f) / float64(fe.published))
			}
			b.ReportMetric(ratio(dd.datagramBytes, fe.datagramBytes), "demand/all")
			b.ReportMetric(ratio(dd.quicBytes, fe.quicBytes), "quic-demand/all")
		}
	})
}

func reportCascade(b *testing.B, c cascadeBytes) {
	s := cascadeWindow.Seconds()
	b.ReportMetric(float64(c.datagramBytes)*8/s/1e6, "Mbit/s")
	b.ReportMetric(float64(c.quicBytes)*8/s/1e6, "quic-Mbit/s")
	b.ReportMetric(float64(c.datagrams)/s, "datagrams/s")
	if c.published > 0 {
		b.ReportMetric(float64(c.datagramBytes)/float64(c.published), "links/published")
	}
}
