package bridge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// This file holds the test harness: a bridge on loopback and pion clients
// that talk to it through the same calls signaling makes.

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("BRIDGE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// startBridge runs a bridge on 127.0.0.1:0 until the test ends.
func startBridge(t testing.TB) *Bridge {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{UDPConn: conn, IncludeLoopback: true, Logger: testLogger()}
	if socks := envTestSockets(t); socks != nil { // BRIDGE_TEST_SOCKETS
		conn.Close()
		cfg.UDPConn, cfg.UDPConns = socks[0], socks[1:]
	}
	return runBridge(t, cfg)
}

// runBridge makes a bridge of cfg and runs it until the test ends, when
// Run must end without an error.
func runBridge(t testing.TB, cfg Config) *Bridge {
	t.Helper()
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b
}

// clientAPI builds a bare pion API for test clients: loopback only, no
// interceptors (the tests write and read RTCP themselves).
func clientAPI(t testing.TB, opts ...func(*webrtc.SettingEngine)) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: audioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	// The NACK test asks again for a packet it received; SRTP would drop
	// the retransmission as a replay.
	se.DisableSRTPReplayProtection(true)
	for _, o := range opts {
		o(&se)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

// recvTrack records what a client receives on one track.
type recvTrack struct {
	stream, id string
	kind       webrtc.RTPCodecType
	ssrc       uint32

	mu        sync.Mutex
	packets   int
	keyframes int
	bad       int // payload bytes not as sent
	seqs      []uint16
	layers    map[byte]int // video: packets per source layer
	dupes     int          // packets with a sequence number seen before
	seen      map[uint16]bool
	lastLayer byte
	// check, when set, validates video payloads instead of the VP8 check.
	check func(payload []byte) (keyframe, ok bool)
}

// seqGaps counts consecutive received packets whose sequence numbers do not
// follow each other (retransmitted duplicates excluded).
func (r *recvTrack) seqGaps() (gaps int, last uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[uint16]bool{}
	var prev uint16
	first := true
	for _, s := range r.seqs {
		if seen[s] {
			continue
		}
		seen[s] = true
		if !first && s != prev+1 {
			gaps++
		}
		prev, first = s, false
	}
	return gaps, prev
}

func (r *recvTrack) layer() byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastLayer
}

func (r *recvTrack) snapshot() (packets, keyframes, bad, dupes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets, r.keyframes, r.bad, r.dupes
}

type client struct {
	t        testing.TB
	id       string
	p        *Participant
	pub      *webrtc.PeerConnection
	sub      *webrtc.PeerConnection
	ops      chan func()
	done     chan struct{}
	loopDone chan struct{}
	wg       sync.WaitGroup

	mu     sync.Mutex
	tracks map[string]*recvTrack        // by track ID
	early  [2][]webrtc.ICECandidateInit // by PC, before its remote description
	failed error

	// publishing
	audio   *webrtc.TrackLocalStaticRTP
	video   []*webrtc.TrackLocalStaticRTP // by layer, low to high
	rids    []string
	wantKF  atomic.Bool
	kfEvery uint32 // periodic keyframe every kfEvery frames; 0: only the first and on PLI
	manual  bool   // publish starts no sender: the test writes to c.video itself
	// light: received packets are only counted in recvCount (benchmarks).
	light     bool
	recvCount *atomic.Int64
	recvHook  func(total int64)
	// videoCheck, when set, validates received video instead of the VP8
	// check (other codecs).
	videoCheck func(payload []byte) (keyframe, ok bool)
	loud       atomic.Int32 // RFC 6464 level this client sends (dBov)
	offers     atomic.Int32
	forwarding atomic.Pointer[func(bool, []string)] // ParticipantEvents.Forwarding, when set (setForwarding)
	nacked     map[uint16]bool                      // sequence numbers the bridge asked this publisher for; guarded by mu
}

// newClient joins room r as id. It publishes nothing until publish.
func newClient(t testing.TB, api *webrtc.API, r *Room, id string) *client {
	t.Helper()
	c := &client{t: t, id: id, ops: make(chan func(), 256), done: make(chan struct{}), loopDone: make(chan struct{}), tracks: map[string]*recvTrack{}, nacked: map[uint16]bool{}}
	c.loud.Store(100)
	var err error
	if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if c.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	c.p, err = r.Join(id, ParticipantEvents{
		Candidate: func(pc PC, cand *webrtc.ICECandidateInit) {
			if cand == nil {
				return
			}
			cc := *cand
			c.do(func() {
				target := c.pub
				if pc == PCSub {
					target = c.sub
				}
				if target.RemoteDescription() == nil {
					c.early[pc] = append(c.early[pc], cc)
					return
				}
				_ = target.AddICECandidate(cc)
			})
		},
		Offer: func(sdp string) {
			c.offers.Add(1)
			c.do(func() { c.answer(sdp) })
		},
		Failed: func(err error) {
			c.mu.Lock()
			c.failed = err
			c.mu.Unlock()
		},
		Forwarding: func(all bool, ids []string) {
			if f := c.forwarding.Load(); f != nil {
				(*f)(all, ids)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, pc := range []*webrtc.PeerConnection{c.pub, c.sub} {
		which := PC(i)
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand == nil {
				return
			}
			init := cand.ToJSON()
			c.do(func() {
				if err := c.p.AddCandidate(which, init); err != nil && !errors.Is(err, ErrClosed) {
					c.t.Errorf("%s: AddCandidate: %v", c.id, err)
				}
			})
		})
	}
	c.sub.OnTrack(c.onTrack)
	go c.loop()
	return c
}

// setForwarding makes f receive the client's ParticipantEvents.Forwarding calls.
func (c *client) setForwarding(f func(bool, []string)) { c.forwarding.Store(&f) }

func (c *client) do(f func()) {
	select {
	case c.ops <- f:
	case <-c.done:
	}
}

func (c *client) loop() {
	defer close(c.loopDone)
	for {
		select {
		case f := <-c.ops:
			f()
		case <-c.done:
			return
		}
	}
}

// answer handles a subscriber offer from the bridge. An offer still queued
// when the bridge closes the participant finds the sub PC closed by the
// bridge's DTLS close_notify; that is the end of the session, not an error.
func (c *client) answer(offer string) {
	failed := func(step string, err error) {
		if !errors.Is(err, webrtc.ErrConnectionClosed) {
			c.t.Errorf("%s: %s: %v", c.id, step, err)
		}
	}
	waitTransportStarted(c.sub)
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		failed("set sub offer", err)
		return
	}
	ans, err := c.sub.CreateAnswer(nil)
	if err != nil {
		failed("create answer", err)
		return
	}
	if err := c.sub.SetLocalDescription(ans); err != nil {
		failed("set answer", err)
		return
	}
	c.flushEarly()
	if err := c.p.HandleAnswer(ans.SDP); err != nil && !errors.Is(err, ErrClosed) {
		c.t.Errorf("%s: HandleAnswer: %v", c.id, err)
	}
}

func (c *client) flushEarly() {
	for i, pc := range []*webrtc.PeerConnection{c.pub, c.sub} {
		if pc.RemoteDescription() == nil {
			continue
		}
		for _, cand := range c.early[i] {
			if err := pc.AddICECandidate(cand); err != nil {
				c.t.Errorf("%s: add early candidate: %v", c.id, err)
			}
		}
		c.early[i] = nil
	}
}

func (c *client) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	rt := &recvTrack{stream: tr.StreamID(), id: tr.ID(), kind: tr.Kind(), ssrc: uint32(tr.SSRC()), layers: map[byte]int{}, seen: map[uint16]bool{}, check: c.videoCheck}
	c.mu.Lock()
	c.tracks[tr.ID()] = rt
	c.mu.Unlock()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if c.light {
			total := c.recvCount.Add(1)
			if c.recvHook != nil {
				c.recvHook(total)
			}
			continue
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		rt.record(&pkt)
	}
}

func (r *recvTrack) record(pkt *rtp.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.packets++
	if r.seen[pkt.SequenceNumber] {
		r.dupes++
	}
	r.seen[pkt.SequenceNumber] = true
	r.seqs = append(r.seqs, pkt.SequenceNumber)
	if r.kind == webrtc.RTPCodecTypeAudio {
		if !checkAudioPayload(pkt.Payload) {
			r.bad++
		}
		return
	}
	if r.check != nil {
		kf, ok := r.check(pkt.Payload)
		if !ok {
			r.bad++
		} else if kf {
			r.keyframes++
		}
		return
	}
	layer, kf, ok := checkVP8Payload(pkt.Payload)
	if !ok {
		r.bad++
		return
	}
	r.layers[layer]++
	r.lastLayer = layer
	if kf {
		r.keyframes++
	}
}

// Synthetic media. Audio payload: 0xfc, counter (4 bytes), then 40 bytes of
// counter+i. VP8 payload: descriptor with a 15-bit picture ID, VP8 header
// (keyframes carry the 720/360/180 dimensions), then a body: 0xab, layer,
// frame (4 bytes), bytes frame+i up to the layer's size.

func audioPayload(n uint32) []byte {
	p := make([]byte, 45)
	p[0] = 0xfc
	binary.BigEndian.PutUint32(p[1:], n)
	for i := 5; i < len(p); i++ {
		p[i] = byte(n) + byte(i)
	}
	return p
}

func checkAudioPayload(p []byte) bool {
	if len(p) != 45 || p[0] != 0xfc {
		return false
	}
	n := binary.BigEndian.Uint32(p[1:])
	for i := 5; i < len(p); i++ {
		if p[i] != byte(n)+byte(i) {
			return false
		}
	}
	return true
}

var layerHeights = []int{180, 360, 720}
var layerSizes = []int{150, 400, 1000}

func vp8Payload(layer int, frame uint32, kf bool) []byte {
	pic := uint16(frame) & 0x7fff
	p := []byte{0x90, 0x80, 0x80 | byte(pic>>8), byte(pic)}
	if kf {
		h := layerHeights[layer]
		w := h * 16 / 9
		p = append(p, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, byte(w), byte(w>>8), byte(h), byte(h>>8))
	} else {
		p = append(p, 0x11, 0x02, 0x00)
	}
	body := make([]byte, layerSizes[layer])
	body[0] = 0xab
	body[1] = byte(layer)
	binary.BigEndian.PutUint32(body[2:], frame)
	for i := 6; i < len(body); i++ {
		body[i] = byte(frame) + byte(i)
	}
	return append(p, body...)
}

func checkVP8Payload(p []byte) (layer byte, kf bool, ok bool) {
	if len(p) < 4 || p[0] != 0x90 || p[1] != 0x80 {
		return 0, false, false
	}
	kf = isVP8Keyframe(p)
	off := 4 + 3
	if kf {
		off = 4 + 10
	}
	body := p[off:]
	if len(body) < 6 || body[0] != 0xab || int(body[1]) >= len(layerSizes) || len(body) != layerSizes[body[1]] {
		return 0, false, false
	}
	frame := binary.BigEndian.Uint32(body[2:])
	for i := 6; i < len(body); i++ {
		if body[i] != byte(frame)+byte(i) {
			return 0, false, false
		}
	}
	return body[1], kf, true
}

// offerPub negotiates the publisher PeerConnection through HandleOffer.
func (c *client) offerPub() {
	c.t.Helper()
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		c.t.Fatal(err)
	}
	ans, err := c.p.HandleOffer(offer.SDP)
	if err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	c.do(func() {
		defer close(done)
		if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
			c.t.Errorf("%s: set pub answer: %v", c.id, err)
		}
		c.flushEarly()
	})
	<-done
}

// publish adds Opus audio and VP8 video (simulcast with the given RIDs, or
// one layer when rids is empty), offers, and starts sending.
func (c *client) publish(rids []string) {
	c.t.Helper()
	var err error
	c.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", c.id)
	if err != nil {
		c.t.Fatal(err)
	}
	aSender, err := c.pub.AddTrack(c.audio)
	if err != nil {
		c.t.Fatal(err)
	}
	c.rids = rids
	n := max(len(rids), 1)
	for i := 0; i < n; i++ {
		var opts []func(*webrtc.TrackLocalStaticRTP)
		if len(rids) > 0 {
			opts = append(opts, webrtc.WithRTPStreamID(rids[i]))
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", c.id, opts...)
		if err != nil {
			c.t.Fatal(err)
		}
		c.video = append(c.video, tr)
	}
	vSender, err := c.pub.AddTrack(c.video[0])
	if err != nil {
		c.t.Fatal(err)
	}
	for _, tr := range c.video[1:] {
		if err := vSender.AddEncoding(tr); err != nil {
			c.t.Fatal(err)
		}
	}
	readers := []func() ([]rtcp.Packet, interceptor.Attributes, error){aSender.ReadRTCP, vSender.ReadRTCP}
	for _, rid := range rids[min(1, len(rids)):] {
		readers = append(readers, func() ([]rtcp.Packet, interceptor.Attributes, error) { return vSender.ReadSimulcastRTCP(rid) })
	}
	for _, read := range readers {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			for {
				pkts, _, err := read()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p := p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						c.wantKF.Store(true)
					case *rtcp.TransportLayerNack:
						c.mu.Lock()
						for _, pair := range p.Nacks {
							for _, seq := range pair.PacketList() {
								c.nacked[seq] = true
							}
						}
						c.mu.Unlock()
					}
				}
			}
		}()
	}
	c.offerPub()

	extID := func(s *webrtc.RTPSender, uri string) uint8 {
		for _, e := range s.GetParameters().HeaderExtensions {
			if e.URI == uri {
				return uint8(e.ID)
			}
		}
		return 0
	}
	levelID := extID(aSender, audioLevelURI)
	midID := extID(vSender, sdp.SDESMidURI)
	ridID := extID(vSender, sdp.SDESRTPStreamIDURI)
	var mid string
	for _, tr := range c.pub.GetTransceivers() {
		if tr.Sender() == vSender {
			mid = tr.Mid()
		}
	}
	if c.manual {
		return
	}
	c.wg.Add(1)
	go c.send(levelID, midID, ridID, mid)
}

func (c *client) send(levelID, midID, ridID uint8, mid string) {
	defer c.wg.Done()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var n, frame uint32
	seqs := make([]uint16, len(c.video))
	var aseq uint16
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		n++
		ap := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: aseq, Timestamp: n * 960}, Payload: audioPayload(n)}
		aseq++
		if levelID != 0 {
			_ = ap.Header.SetExtension(levelID, []byte{0x80 | byte(c.loud.Load())&0x7f})
		}
		if err := c.audio.WriteRTP(ap); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
		if n%2 != 0 {
			continue
		}
		kf := frame == 0 || (c.kfEvery > 0 && frame%c.kfEvery == 0) || c.wantKF.Swap(false)
		for i, tr := range c.video {
			vp := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seqs[i], Timestamp: frame * 3600, Marker: true}, Payload: vp8Payload(i, frame, kf)}
			seqs[i]++
			if len(c.rids) > 0 && midID != 0 && ridID != 0 {
				_ = vp.Header.SetExtension(midID, []byte(mid))
				_ = vp.Header.SetExtension(ridID, []byte(c.rids[i]))
			}
			_ = tr.WriteRTP(vp)
		}
		frame++
	}
}

// track returns what the client received of a track, or nil.
func (c *client) track(id string) *recvTrack {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tracks[id]
}

// close leaves the room and closes the client.
func (c *client) close() {
	close(c.done)
	<-c.loopDone
	c.p.Close()
	_ = c.pub.GracefulClose()
	_ = c.sub.GracefulClose()
	c.wg.Wait()
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *client) String() string { return fmt.Sprintf("client %s", c.id) }

// waitTransportStarted waits, for at most five seconds, until pc's ICE
// transport has started after its first answer: pion starts it
// asynchronously and takes a renegotiation applied before it has for an
// ICE restart (see Participant.negotiateLocked).
func waitTransportStarted(pc *webrtc.PeerConnection) {
	if pc.CurrentRemoteDescription() == nil {
		return
	}
	for i := 0; i < 1000 && pc.ICEConnectionState() == webrtc.ICEConnectionStateNew; i++ {
		time.Sleep(5 * time.Millisecond)
	}
}
