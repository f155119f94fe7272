package bench

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// role is what a participant sends.
type role int

const (
	roleAV    role = iota // audio + simulcast video
	roleAudio             // audio only
	roleSub               // nothing: receives only
)

func (r role) String() string {
	return [...]string{"publisher", "audio-publisher", "subscriber"}[r]
}

// participant is one synthetic participant. Its fields are static after
// join except where marked.
type participant struct {
	run  *runner
	tag  uint32 // the Stamp sender tag; unique in the run
	room int
	node int // index into runner.targets
	// region is where the participant is; a link is emulated when it is
	// not its node's region.
	region string
	role   role
	src    *client.Synth
	start  time.Time // join started

	c *client.Client

	// mu guards the following fields.
	mu        sync.Mutex
	welcomeAt time.Time
	connected time.Time // first PeerConnection connected
	pubStart  time.Time // media sending started (publishers)
	shown     []string  // video track IDs shown, in tile order
	shownAt   map[string]time.Time
	hidden    []string // video track IDs announced but not shown
	streams   []*stream
	leftAt    time.Time // left the room (churn or end)
	errs      []string
	// paused are the video track IDs last-N pauses for this participant
	// now (the latest forwarding message), pauses when it paused each.
	paused map[string]bool
	pauses map[string]pauseSpans
}

// sourceAddr is the address participant tag dials its node's signaling
// from: on a node that listens on IPv4 loopback, an address of its own in
// 127.1.0.0/16 (tags beyond 65534 share), as the participants of a real
// meeting come from many addresses. From one address a node admits 100
// participants and 5 joins a second (docs/security.md), which would cap a
// large local meeting at 100 per node and pace its ramp at 5 joins/s per
// node. Elsewhere the zero Addr: the system's choice.
func sourceAddr(base string, tag uint32) netip.Addr {
	u, err := url.Parse(base)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil || !a.Is4() || !a.IsLoopback() {
		return netip.Addr{}
	}
	n := tag%65534 + 1
	return netip.AddrFrom4([4]byte{127, 1, byte(n >> 8), byte(n)})
}

// join connects, publishes and subscribes; it returns once welcome has
// arrived and media is set up. The participant then runs until ctx ends.
func (p *participant) join(ctx context.Context) error {
	r := p.run
	s := r.scn
	stream := fmt.Sprintf("b%d", p.tag)
	var err error
	opts := client.Options{
		Name:              fmt.Sprintf("bench %d", p.tag),
		OnTrack:           p.onTrack,
		OnKeyframeRequest: p.src.RequestKeyframe,
		SourceAddr:        sourceAddr(r.targets[p.node].URL, p.tag),
	}
	if opts.SettingEngine, err = r.settingEngine(p); err != nil {
		return err
	}
	if s.TURNOnly {
		opts.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	var audio *webrtc.TrackLocalStaticRTP
	var video []*webrtc.TrackLocalStaticRTP
	if p.role != roleSub {
		if audio, err = client.NewAudio("a", stream); err != nil {
			return err
		}
		opts.Tracks = []webrtc.TrackLocal{audio}
	}
	if p.role == roleAV {
		if video, err = client.NewSimulcastVideo("v", stream, r.layers); err != nil {
			return err
		}
		opts.Simulcast = video
	}
	jctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := client.Join(jctx, r.targets[p.node].URL, r.roomNames[p.room], opts)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.c = c
	p.welcomeAt = time.Now()
	p.mu.Unlock()
	p.src.Ext = c.Ext
	for _, pc := range []struct {
		which wire.PC
		pc    *webrtc.PeerConnection
	}{{wire.PCPub, c.Pub()}, {wire.PCSub, c.Sub()}} {
		if pc.pc == nil {
			continue
		}
		pc.pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) { p.onState(pc.which, st) })
		p.onState(pc.which, pc.pc.ConnectionState())
	}
	go p.events(ctx)
	if p.role != roleSub {
		p.mu.Lock()
		p.pubStart = time.Now()
		p.mu.Unlock()
		seed := r.seed
		go p.src.RunTalk(ctx, audio, client.AudioOptions{Talk: s.Talk, Seed: seed})
		if p.role == roleAV {
			go p.src.RunSimulcast(ctx, video, client.VideoOptions{Layers: r.layers, KeyframeInterval: s.KeyframeInterval, Seed: seed})
		}
	}
	for _, t := range c.Welcome.Tracks {
		p.trackPublished(ctx, t)
	}
	return nil
}

func (p *participant) onState(pc wire.PC, st webrtc.PeerConnectionState) {
	switch st {
	case webrtc.PeerConnectionStateConnected:
		p.mu.Lock()
		if p.connected.IsZero() {
			p.connected = time.Now()
		}
		p.mu.Unlock()
	case webrtc.PeerConnectionStateFailed:
		p.fail(fmt.Sprintf("%s PeerConnection failed", pc))
	}
}

func (p *participant) fail(msg string) {
	p.mu.Lock()
	p.errs = append(p.errs, msg)
	p.mu.Unlock()
	p.run.errors.Add(1)
}

// events reads the server's messages: tracks appearing and going, errors;
// it sends a ping every 10 s, as the protocol asks.
func (p *participant) events(ctx context.Context) {
	ping := time.NewTicker(10 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			p.c.Send(sctx, &wire.Message{Type: wire.TypePing})
			cancel()
		case m, ok := <-p.c.Events():
			if !ok {
				if ctx.Err() == nil && !p.left() {
					err := p.c.Err()
					p.fail(fmt.Sprintf("session ended: %v", err))
				}
				return
			}
			p.run.log.Debug("event", "participant", p.tag, "type", m.Type)
			switch m.Type {
			case wire.TypeTrackPublished:
				if m.Track != nil {
					p.trackPublished(ctx, *m.Track)
				}
			case wire.TypeTrackUnpublished:
				if m.Track != nil {
					p.trackUnpublished(ctx, m.Track.ID)
				}
			case wire.TypeParticipantLeft:
				p.publisherLeft(m.Participant)
			case wire.TypeForwarding, wire.TypeWelcome:
				// The client applied m (client.Paused); a welcome after a
				// move or failover starts with everything forwarded.
				p.forwarding(p.c.PausedVideos(), time.Now())
			case wire.TypeError:
				if m.Error != nil {
					p.fail("server error: " + m.Error.Code)
				}
			}
		}
	}
}

func (p *participant) left() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.leftAt.IsZero()
}

// trackPublished shows a video track if the layout has a free tile. Audio
// arrives without asking.
func (p *participant) trackPublished(ctx context.Context, t wire.Track) {
	if t.Kind != wire.KindVideo {
		return
	}
	layout := p.run.scn.Layout
	p.mu.Lock()
	if slices.Contains(p.shown, t.ID) || slices.Contains(p.hidden, t.ID) {
		p.mu.Unlock()
		return
	}
	show := layout == 0 || len(p.shown) < layout
	if show {
		p.shown = append(p.shown, t.ID)
		if p.shownAt == nil {
			p.shownAt = map[string]time.Time{}
		}
		p.shownAt[t.ID] = time.Now()
	} else {
		p.hidden = append(p.hidden, t.ID)
	}
	p.mu.Unlock()
	if show {
		p.prefs(ctx, t.ID)
	}
}

func (p *participant) prefs(ctx context.Context, trackID string) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h := tileHeight(p.run.scn.Layout)
	if err := p.c.Send(sctx, &wire.Message{Type: wire.TypePrefs, TrackID: trackID, MaxHeight: h}); err != nil && ctx.Err() == nil {
		p.fail("send prefs: " + err.Error())
	}
}

// trackUnpublished frees the track's tile and shows the next hidden video.
func (p *participant) trackUnpublished(ctx context.Context, id string) {
	p.mu.Lock()
	next := ""
	if i := slices.Index(p.shown, id); i >= 0 {
		p.shown = slices.Delete(p.shown, i, i+1)
		if len(p.hidden) > 0 {
			next = p.hidden[0]
			p.hidden = p.hidden[1:]
			p.shown = append(p.shown, next)
			p.shownAt[next] = time.Now()
		}
		delete(p.shownAt, id)
	} else if i := slices.Index(p.hidden, id); i >= 0 {
		p.hidden = slices.Delete(p.hidden, i, i+1)
	}
	for _, s := range p.streams {
		if s.trackID == id {
			s.end(time.Now())
		}
	}
	p.mu.Unlock()
	if next != "" {
		p.prefs(ctx, next)
	}
}

// publisherLeft ends the streams of a participant that left, so that its
// silence is not counted as a freeze.
func (p *participant) publisherLeft(id string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.streams {
		if s.publisher == id {
			s.end(now)
		}
	}
}

// forwarding applies a forwarding message that arrived at now: the videos
// it names are paused by last-N from now on, the others not.
func (p *participant) forwarding(ids []string, now time.Time) {
	next := make(map[string]bool, len(ids))
	for _, id := range ids {
		next[id] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pauses == nil {
		p.pauses = map[string]pauseSpans{}
	}
	changed := map[string]bool{}
	for id := range next {
		if !p.paused[id] {
			changed[id] = true
			p.pauses[id] = append(p.pauses[id], pauseSpan{start: now})
		}
	}
	for id := range p.paused {
		if !next[id] {
			changed[id] = false
			if ps := p.pauses[id]; len(ps) > 0 && ps[len(ps)-1].end.IsZero() {
				ps[len(ps)-1].end = now
			}
		}
	}
	p.paused = next
	for _, s := range p.streams {
		if on, ok := changed[s.trackID]; ok {
			s.setPaused(on, now)
		}
	}
}

// onTrack starts reading one remote track. It runs on pion's goroutine.
func (p *participant) onTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	s := newStream(p, t)
	p.mu.Lock()
	if p.paused[s.trackID] {
		s.setPaused(true, time.Now()) // paused before its first packet
	}
	p.streams = append(p.streams, s)
	p.mu.Unlock()
	go s.read(t)
}

// pli asks the bridge for a keyframe of the track with ssrc.
func (p *participant) pli(ssrc uint32) {
	p.mu.Lock()
	c := p.c
	p.mu.Unlock()
	if c == nil {
		return
	}
	if err := c.Sub().WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err == nil {
		p.run.plis.Add(1)
	}
}

// leave says leave and closes the connections.
func (p *participant) leave() {
	p.mu.Lock()
	if !p.leftAt.IsZero() || p.c == nil {
		p.mu.Unlock()
		return
	}
	p.leftAt = time.Now()
	for _, s := range p.streams {
		s.end(p.leftAt)
	}
	c := p.c
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.Leave(ctx)
}
