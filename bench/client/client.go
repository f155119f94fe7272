// Package client is a meshmeet participant in Go: it joins a room through
// the signaling protocol and publishes and receives media with pion/webrtc,
// as a browser would. It is a black-box client: it imports the protocol
// types (signaling/wire) and nothing of the server. The integration tests
// and `meshmeet bench` use it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Options configure a Client. The zero value joins with no display name and
// no local tracks.
type Options struct {
	// Name is the display name.
	Name string
	// Tracks are published on the pub PeerConnection at join. For simulcast,
	// give the layers of one track in Simulcast instead.
	Tracks []webrtc.TrackLocal
	// Simulcast are the RID layers of one simulcast video track, lowest
	// first (each a TrackLocalStaticRTP with the same ID and a RID).
	Simulcast []*webrtc.TrackLocalStaticRTP
	// SettingEngine, when set, is used for both PeerConnections (vnet, NAT,
	// ICE policy in tests). Nil: loopback candidates on, mDNS off.
	SettingEngine *webrtc.SettingEngine
	// ICETransportPolicy forces TURN-only when set to
	// webrtc.ICETransportPolicyRelay.
	ICETransportPolicy webrtc.ICETransportPolicy
	// OnKeyframeRequest is called when the bridge sends PLI or FIR for a
	// published track.
	OnKeyframeRequest func()
	// OnTrack is called for each remote track on the sub PeerConnection.
	// It runs on pion's goroutine; reading the track is the callee's job.
	OnTrack func(*webrtc.TrackRemote, *webrtc.RTPReceiver)
}

// Client is one participant.
type Client struct {
	ws   *websocket.Conn
	opts Options
	api  *webrtc.API

	// Welcome is the server's answer to join. Static after Join.
	Welcome *wire.Message

	pub, sub *webrtc.PeerConnection

	events chan *wire.Message // every message not handled internally
	done   chan struct{}
	errMu  sync.Mutex
	err    error

	ext atomic.Pointer[HeaderExt] // header extension IDs of pub, once negotiated

	candMu  sync.Mutex
	pending map[wire.PC][]webrtc.ICECandidateInit // candidates before remote description
	hasDesc map[wire.PC]bool
}

// Join dials the node at baseURL (http://host:port), joins room and starts
// publishing Options.Tracks. It returns once welcome has arrived.
func Join(ctx context.Context, baseURL, room string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = "/ws"
	ws, _, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(wire.MaxFrameBytes)
	c := &Client{
		ws:      ws,
		opts:    opts,
		events:  make(chan *wire.Message, 1024),
		done:    make(chan struct{}),
		pending: map[wire.PC][]webrtc.ICECandidateInit{},
		hasDesc: map[wire.PC]bool{},
	}
	if err := c.Send(ctx, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: opts.Name}); err != nil {
		ws.CloseNow()
		return nil, err
	}
	m, err := c.read(ctx)
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	if m.Type == wire.TypeError {
		ws.CloseNow()
		return nil, m.Error
	}
	if m.Type != wire.TypeWelcome {
		ws.CloseNow()
		return nil, fmt.Errorf("expected welcome, got %s", m.Type)
	}
	c.Welcome = m
	if err := c.setupPCs(); err != nil {
		c.Close()
		return nil, err
	}
	go c.readLoop()
	if len(opts.Tracks) > 0 || len(opts.Simulcast) > 0 {
		if err := c.publish(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

func (c *Client) setupPCs() error {
	se := c.opts.SettingEngine
	if se == nil {
		se = &webrtc.SettingEngine{}
		se.SetIncludeLoopbackCandidate(true)
		se.SetICEMulticastDNSMode(0) // disabled
	}
	if c.opts.ICETransportPolicy == webrtc.ICETransportPolicyRelay {
		// pion waits 2 s before it nominates a relayed pair, for a better
		// one to turn up; with TURN only there is none, and a browser
		// nominates at once.
		relay := *se
		relay.SetRelayAcceptanceMinWait(0)
		se = &relay
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		return err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureNack(m, ir); err != nil {
		return err
	}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return err
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return err
	}
	c.api = webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(*se))
	var servers []webrtc.ICEServer
	for _, s := range c.Welcome.ICEServers {
		servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	cfg := webrtc.Configuration{ICEServers: servers, ICETransportPolicy: c.opts.ICETransportPolicy}
	var err error
	if c.sub, err = c.api.NewPeerConnection(cfg); err != nil {
		return err
	}
	c.trickle(c.sub, wire.PCSub)
	c.sub.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		if c.opts.OnTrack != nil {
			c.opts.OnTrack(t, r)
		}
	})
	if len(c.opts.Tracks) > 0 || len(c.opts.Simulcast) > 0 {
		if c.pub, err = c.api.NewPeerConnection(cfg); err != nil {
			return err
		}
		c.trickle(c.pub, wire.PCPub)
	}
	return nil
}

func (c *Client) trickle(pc *webrtc.PeerConnection, which wire.PC) {
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		ci := cand.ToJSON()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.Send(ctx, &wire.Message{Type: wire.TypeCandidate, PC: which, Candidate: &wire.Candidate{
			Candidate: ci.Candidate, SDPMid: ci.SDPMid, SDPMLineIndex: ci.SDPMLineIndex,
		}})
	})
}

// publish adds the local tracks to pub and sends its offer.
func (c *Client) publish(ctx context.Context) error {
	for _, t := range c.opts.Tracks {
		s, err := c.pub.AddTrack(t)
		if err != nil {
			return err
		}
		go c.readRTCP(s)
	}
	if len(c.opts.Simulcast) > 0 {
		s, err := c.pub.AddTrack(c.opts.Simulcast[0])
		if err != nil {
			return err
		}
		for _, l := range c.opts.Simulcast[1:] {
			if err := s.AddEncoding(l); err != nil {
				return err
			}
			go c.readRTCPFrom(func() ([]rtcp.Packet, interceptor.Attributes, error) { return s.ReadSimulcastRTCP(l.RID()) })
		}
		go c.readRTCP(s)
	}
	offer, err := c.pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := c.pub.SetLocalDescription(offer); err != nil {
		return err
	}
	return c.Send(ctx, &wire.Message{Type: wire.TypeOffer, PC: wire.PCPub, SDP: offer.SDP})
}

// readRTCP drains a sender's RTCP (interceptors see only what is read) and
// reports keyframe requests.
func (c *Client) readRTCP(s *webrtc.RTPSender) { c.readRTCPFrom(s.ReadRTCP) }

func (c *Client) readRTCPFrom(read func() ([]rtcp.Packet, interceptor.Attributes, error)) {
	for {
		pkts, _, err := read()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if c.opts.OnKeyframeRequest != nil {
					c.opts.OnKeyframeRequest()
				}
			}
		}
	}
}

// HeaderExt are the header extension IDs negotiated on pub. A sender of
// simulcast must put MID and RID in its video packets, as browsers do, so
// the bridge can tell the layers apart; audio carries the RFC 6464 level.
type HeaderExt struct {
	AudioLevel uint8  // 0: not negotiated
	MID, RID   uint8  // video
	VideoMID   string // the video transceiver's mid
}

// Ext returns the negotiated header extensions, or nil before the pub
// answer arrived. Safe to call per packet.
func (c *Client) Ext() *HeaderExt { return c.ext.Load() }

func (c *Client) negotiatedExt() *HeaderExt {
	e := &HeaderExt{}
	for _, tr := range c.pub.GetTransceivers() {
		s := tr.Sender()
		if s == nil || s.Track() == nil {
			continue
		}
		for _, h := range s.GetParameters().HeaderExtensions {
			switch {
			case tr.Kind() == webrtc.RTPCodecTypeAudio && h.URI == sdp.AudioLevelURI:
				e.AudioLevel = uint8(h.ID)
			case tr.Kind() == webrtc.RTPCodecTypeVideo && h.URI == sdp.SDESMidURI:
				e.MID = uint8(h.ID)
				e.VideoMID = tr.Mid()
			case tr.Kind() == webrtc.RTPCodecTypeVideo && h.URI == sdp.SDESRTPStreamIDURI:
				e.RID = uint8(h.ID)
			}
		}
	}
	return e
}

// Send writes one message.
func (c *Client) Send(ctx context.Context, m *wire.Message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return c.ws.Write(ctx, websocket.MessageText, data)
}

// SendRaw writes one frame as is (tests of malformed input).
func (c *Client) SendRaw(ctx context.Context, data []byte) error {
	return c.ws.Write(ctx, websocket.MessageText, data)
}

func (c *Client) read(ctx context.Context) (*wire.Message, error) {
	_, data, err := c.ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m wire.Message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("server sent bad JSON: %w", err)
	}
	return &m, nil
}

// readLoop handles negotiation messages and passes everything else to
// Events.
func (c *Client) readLoop() {
	defer close(c.done)
	defer close(c.events)
	for {
		m, err := c.read(context.Background())
		if err != nil {
			c.setErr(err)
			return
		}
		if err := c.handle(m); err != nil {
			c.setErr(err)
			c.ws.Close(websocket.StatusInternalError, "client error")
			return
		}
	}
}

func (c *Client) handle(m *wire.Message) error {
	switch m.Type {
	case wire.TypeAnswer:
		if c.pub == nil {
			return errors.New("answer without a pub PeerConnection")
		}
		if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
			return fmt.Errorf("pub answer: %w", err)
		}
		c.ext.Store(c.negotiatedExt())
		return c.remoteDescSet(c.pub, wire.PCPub)
	case wire.TypeOffer:
		if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
			return fmt.Errorf("sub offer: %w", err)
		}
		answer, err := c.sub.CreateAnswer(nil)
		if err != nil {
			return err
		}
		if err := c.sub.SetLocalDescription(answer); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Send(ctx, &wire.Message{Type: wire.TypeAnswer, PC: wire.PCSub, SDP: answer.SDP}); err != nil {
			return err
		}
		return c.remoteDescSet(c.sub, wire.PCSub)
	case wire.TypeCandidate:
		pc := c.sub
		if m.PC == wire.PCPub {
			pc = c.pub
		}
		if pc == nil {
			return nil
		}
		ci := webrtc.ICECandidateInit{Candidate: m.Candidate.Candidate, SDPMid: m.Candidate.SDPMid, SDPMLineIndex: m.Candidate.SDPMLineIndex}
		c.candMu.Lock()
		if !c.hasDesc[m.PC] {
			c.pending[m.PC] = append(c.pending[m.PC], ci)
			c.candMu.Unlock()
			return nil
		}
		c.candMu.Unlock()
		return pc.AddICECandidate(ci)
	}
	select {
	case c.events <- m:
	default:
		return errors.New("client: event queue full; read Events")
	}
	return nil
}

func (c *Client) remoteDescSet(pc *webrtc.PeerConnection, which wire.PC) error {
	c.candMu.Lock()
	c.hasDesc[which] = true
	pend := c.pending[which]
	c.pending[which] = nil
	c.candMu.Unlock()
	for _, ci := range pend {
		if err := pc.AddICECandidate(ci); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) setErr(err error) {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.err == nil {
		c.err = err
	}
}

// Err returns why the session ended, once Done is closed.
func (c *Client) Err() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.err
}

// Events delivers server messages other than negotiation: events, chat,
// pong, errors. It is closed when the session ends.
func (c *Client) Events() <-chan *wire.Message { return c.events }

// Done is closed when the session ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Pub and Sub return the PeerConnections (Pub is nil when publishing
// nothing).
func (c *Client) Pub() *webrtc.PeerConnection { return c.pub }
func (c *Client) Sub() *webrtc.PeerConnection { return c.sub }

// Leave says leave and closes everything.
//
// It waits (until ctx ends) for the server to close the socket after the
// leave: closing it first could reset the connection and lose the leave,
// and the server would then keep the participant for its resume window.
func (c *Client) Leave(ctx context.Context) error {
	err := c.Send(ctx, &wire.Message{Type: wire.TypeLeave})
	if err == nil {
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	}
	c.Close()
	return err
}

// Close closes the socket and both PeerConnections without a leave.
func (c *Client) Close() {
	c.ws.CloseNow()
	if c.pub != nil {
		c.pub.Close()
	}
	if c.sub != nil {
		c.sub.Close()
	}
}

// DropSocket closes only the WebSocket, keeping the PeerConnections, as a
// network change would (tests of resume).
func (c *Client) DropSocket() { c.ws.CloseNow() }
