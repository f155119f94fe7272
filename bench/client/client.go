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
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
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
	// Token is a JWT sent with the join (--auth jwt).
	Token string
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
	// RTTs are sent with the join (placement, issue 12). With Probe set
	// and RTTs empty, Join measures them itself (MeasureRTTs) while it
	// dials.
	RTTs  []wire.RegionRTT
	Probe bool
	// OnRedirect, when set, is called with the target URL of every
	// redirect the client follows (at join and mid-meeting).
	OnRedirect func(url string)
	// Failover: when the socket breaks without a leave or a fatal error
	// (the node died), resume on the same node or, when it does not
	// answer, on one of Alternates, with the resume secret; publish again
	// on the new node (failover.go).
	Failover bool
	// Alternates are other nodes' base URLs (of the same region first) to
	// fail over to. Nil: those GET /alternates lists at join.
	Alternates []string
	// OnFailover, when set, is called with the base URL of the node the
	// client resumed on after losing its node.
	OnFailover func(url string)
	// SourceAddr, when valid, is the local address the signaling
	// WebSocket is dialled from (a node counts its per-source limits by
	// it; docs/security.md). The zero value lets the system choose.
	SourceAddr netip.Addr
}

// maxRedirects bounds the redirects followed in a row without a welcome.
const maxRedirects = 3

// Client is one participant.
type Client struct {
	opts Options
	api  *webrtc.API
	room string // static

	// Welcome is the server's answer to join. Static after Join: a move to
	// another node (redirect) delivers that node's welcome on Events.
	Welcome *wire.Message

	// mu guards ws, pub, sub and base, which a redirect replaces (on the
	// readLoop goroutine, which alone writes them after Join).
	mu       sync.Mutex
	ws       *websocket.Conn
	pub, sub *webrtc.PeerConnection
	base     string // public base URL of the node now serving us
	secret   string // resume secret; readLoop only
	partID   string // participant ID; readLoop only

	events chan *wire.Message // every message not handled internally
	done   chan struct{}
	errMu  sync.Mutex
	err    error

	ext atomic.Pointer[HeaderExt] // header extension IDs of pub, once negotiated

	candMu  sync.Mutex
	pending map[wire.PC][]webrtc.ICECandidateInit // candidates before remote description
	hasDesc map[wire.PC]bool

	rttWait chan []wire.RegionRTT // MeasureRTTs running during Join

	// fwd is what the latest forwarding message said of last-N; a welcome
	// (join, move, failover) resets it to everything forwarded.
	fwdMu sync.Mutex
	fwd   fwdState // guarded by fwdMu

	closing atomic.Bool // Leave or Close called: no failover
	fatal   atomic.Bool // the server sent a fatal error: no failover
	altMu   sync.Mutex
	alts    []string // failover targets (failover.go); guarded by altMu
}

// Join dials the node at baseURL (http://host:port), joins room and starts
// publishing Options.Tracks. It returns once welcome has arrived. When the
// node answers with a redirect, Join follows it (at most maxRedirects in
// a row) to the node it names.
func Join(ctx context.Context, baseURL, room string, opts Options) (*Client, error) {
	c := &Client{
		opts:    opts,
		room:    room,
		events:  make(chan *wire.Message, 1024),
		done:    make(chan struct{}),
		pending: map[wire.PC][]webrtc.ICECandidateInit{},
		hasDesc: map[wire.PC]bool{},
	}
	rtts := opts.RTTs
	if len(rtts) == 0 && opts.Probe {
		// Measured while the first socket opens, bounded so a region that
		// does not answer delays the join little.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ch := make(chan []wire.RegionRTT, 1)
		go func() { r, _ := MeasureRTTs(pctx, baseURL); ch <- r }()
		defer func() { cancel() }()
		c.rttWait = ch
	}
	c.opts.RTTs = rtts
	ws, m, base, err := c.connect(ctx, baseURL, nil)
	if err != nil {
		return nil, err
	}
	c.ws, c.base = ws, base
	c.Welcome = m
	c.secret, c.partID = m.Secret, m.Participant
	// The welcome's tracks are learned of now, before any forwarding: a
	// video it lists that the next forwarding leaves out is paused.
	c.welcomeForwarding(m) // forwarding.go
	if opts.Failover {
		c.learnAlternates(ctx, base) // failover.go
	}
	if err := c.setupPCs(m.ICEServers); err != nil {
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

// connect dials base's /ws and joins (resuming when resume is set),
// following redirects. It returns the socket, the welcome and the base URL
// of the node that sent it.
func (c *Client) connect(ctx context.Context, base string, resume *wire.Resume) (*websocket.Conn, *wire.Message, string, error) {
	for hop := 0; ; hop++ {
		ws, err := dialWS(ctx, base, c.opts.SourceAddr)
		if err != nil {
			return nil, nil, "", err
		}
		join := &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: c.room, Name: c.opts.Name, Resume: resume}
		if resume == nil {
			join.Token = c.opts.Token
		}
		if resume == nil {
			if c.rttWait != nil {
				c.opts.RTTs = <-c.rttWait
				c.rttWait = nil
			}
			join.RTTs = c.opts.RTTs
		}
		if err := writeMsg(ctx, ws, join); err != nil {
			ws.CloseNow()
			return nil, nil, "", err
		}
		m, err := readMsg(ctx, ws)
		if err != nil {
			ws.CloseNow()
			return nil, nil, "", err
		}
		switch m.Type {
		case wire.TypeWelcome:
			return ws, m, base, nil
		case wire.TypeError:
			ws.CloseNow()
			return nil, nil, "", m.Error
		case wire.TypeRedirect:
			ws.CloseNow()
			if hop >= maxRedirects {
				return nil, nil, "", errors.New("client: too many redirects")
			}
			if err := ValidRedirect(m.URL); err != nil {
				return nil, nil, "", err
			}
			if c.opts.OnRedirect != nil {
				c.opts.OnRedirect(m.URL)
			}
			base = m.URL
		default:
			ws.CloseNow()
			return nil, nil, "", fmt.Errorf("expected welcome, got %s", m.Type)
		}
	}
}

// ValidRedirect checks the url of a redirect: an absolute http or https
// URL with a host, no user info, query or fragment, at most
// wire.MaxURLBytes.
func ValidRedirect(s string) error {
	bad := errors.New("client: invalid redirect URL")
	if s == "" || len(s) > wire.MaxURLBytes {
		return bad
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return bad
	}
	return nil
}

// maxServerMessageBytes bounds one message from the server. It is not
// wire.MaxFrameBytes, which bounds what a client sends: a welcome lists every
// participant and track of the meeting, about 100 bytes each with short
// names and up to ~450 with 64-character ones, so the welcome of a
// meeting of 1,000 is 0.1 to 0.5 MB (a browser sets no limit at all).
const maxServerMessageBytes = 4 << 20

// dialWS opens base's signaling WebSocket, from src when it is valid.
func dialWS(ctx context.Context, base string, src netip.Addr) (*websocket.Conn, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ws"
	o := &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}}
	if src.IsValid() {
		// The handshake's connection is hijacked for the WebSocket, so
		// this transport keeps nothing idle.
		d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		o.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	ws, _, err := websocket.Dial(ctx, u.String(), o)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(maxServerMessageBytes)
	return ws, nil
}

func writeMsg(ctx context.Context, ws *websocket.Conn, m *wire.Message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return ws.Write(ctx, websocket.MessageText, data)
}

func readMsg(ctx context.Context, ws *websocket.Conn) (*wire.Message, error) {
	_, data, err := ws.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m wire.Message
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("server sent bad JSON: %w", err)
	}
	return &m, nil
}

// move follows a redirect mid-meeting (the node drains): join the node at
// target with the resume secret, then new PeerConnections that publish the
// same tracks. The old socket and PeerConnections close. Runs on readLoop.
func (c *Client) move(target string) error {
	if err := ValidRedirect(target); err != nil {
		return err
	}
	if c.opts.OnRedirect != nil {
		c.opts.OnRedirect(target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, m, base, err := c.connect(ctx, target, &wire.Resume{Participant: c.partID, Secret: c.secret})
	if err != nil {
		return fmt.Errorf("client: moving to another node: %w", err)
	}
	return c.adopt(ctx, ws, m, base)
}

// adopt makes ws, joined to the node at base with welcome m, the client's
// session: new PeerConnections that publish the same tracks; the old
// socket and PeerConnections close. Runs on readLoop.
func (c *Client) adopt(ctx context.Context, ws *websocket.Conn, m *wire.Message, base string) error {
	ice := m.ICEServers
	if len(ice) == 0 {
		ice = c.Welcome.ICEServers
	}
	c.mu.Lock()
	old, oldPub, oldSub := c.ws, c.pub, c.sub
	c.ws, c.base = ws, base
	c.pub, c.sub = nil, nil
	c.mu.Unlock()
	old.CloseNow()
	for _, pc := range []*webrtc.PeerConnection{oldPub, oldSub} {
		if pc != nil {
			pc.Close()
		}
	}
	c.candMu.Lock()
	c.pending = map[wire.PC][]webrtc.ICECandidateInit{}
	c.hasDesc = map[wire.PC]bool{}
	c.candMu.Unlock()
	if m.Secret != "" {
		c.secret, c.partID = m.Secret, m.Participant
	}
	c.welcomeForwarding(m) // a welcome starts with everything forwarded (forwarding.go)
	if err := c.setupPCs(ice); err != nil {
		return err
	}
	select {
	case c.events <- m:
	default:
	}
	if len(c.opts.Tracks) > 0 || len(c.opts.Simulcast) > 0 {
		return c.publish(ctx)
	}
	return nil
}

// Node returns the public base URL of the node serving the client now.
func (c *Client) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base
}

func (c *Client) setupPCs(ice []wire.ICEServer) error {
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
	for _, s := range ice {
		servers = append(servers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	cfg := webrtc.Configuration{ICEServers: servers, ICETransportPolicy: c.opts.ICETransportPolicy}
	sub, err := c.api.NewPeerConnection(cfg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.sub = sub
	c.mu.Unlock()
	c.trickle(sub, wire.PCSub)
	c.watchICE(sub) // failover.go
	sub.OnTrack(func(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
		if c.opts.OnTrack != nil {
			c.opts.OnTrack(t, r)
		}
	})
	if len(c.opts.Tracks) > 0 || len(c.opts.Simulcast) > 0 {
		pub, err := c.api.NewPeerConnection(cfg)
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.pub = pub
		c.mu.Unlock()
		c.trickle(pub, wire.PCPub)
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
		if c.Pub() != pc && c.Sub() != pc {
			return // a PeerConnection of the node we left
		}
		c.Send(ctx, &wire.Message{Type: wire.TypeCandidate, PC: which, Candidate: &wire.Candidate{
			Candidate: ci.Candidate, SDPMid: ci.SDPMid, SDPMLineIndex: ci.SDPMLineIndex,
		}})
	})
}

// publish adds the local tracks to pub and sends its offer.
func (c *Client) publish(ctx context.Context) error {
	pub := c.Pub()
	for _, t := range c.opts.Tracks {
		s, err := pub.AddTrack(t)
		if err != nil {
			return err
		}
		go c.readRTCP(s)
	}
	if len(c.opts.Simulcast) > 0 {
		s, err := pub.AddTrack(c.opts.Simulcast[0])
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
	offer, err := pub.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pub.SetLocalDescription(offer); err != nil {
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
	for _, tr := range c.Pub().GetTransceivers() {
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
	return writeMsg(ctx, c.conn(), m)
}

// SendRaw writes one frame as is (tests of malformed input).
func (c *Client) SendRaw(ctx context.Context, data []byte) error {
	return c.conn().Write(ctx, websocket.MessageText, data)
}

// conn is the current socket.
func (c *Client) conn() *websocket.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ws
}

func (c *Client) read(ctx context.Context) (*wire.Message, error) {
	return readMsg(ctx, c.conn())
}

// readLoop handles negotiation messages and passes everything else to
// Events.
func (c *Client) readLoop() {
	defer close(c.done)
	defer close(c.events)
	for {
		m, err := c.read(context.Background())
		if err != nil {
			if c.failover() { // failover.go
				continue
			}
			c.setErr(err)
			return
		}
		if m.Type == wire.TypeError && m.Error != nil && m.Error.Fatal {
			c.fatal.Store(true)
		}
		if m.Type == wire.TypeRedirect {
			if err := c.move(m.URL); err != nil {
				c.setErr(err)
				c.conn().Close(websocket.StatusInternalError, "client error")
				return
			}
			continue
		}
		if err := c.handle(m); err != nil {
			c.setErr(err)
			c.conn().Close(websocket.StatusInternalError, "client error")
			return
		}
	}
}

func (c *Client) handle(m *wire.Message) error {
	pub, sub := c.Pub(), c.Sub()
	switch m.Type {
	case wire.TypeAnswer:
		if pub == nil {
			return errors.New("answer without a pub PeerConnection")
		}
		if err := pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
			return fmt.Errorf("pub answer: %w", err)
		}
		c.ext.Store(c.negotiatedExt())
		return c.remoteDescSet(pub, wire.PCPub)
	case wire.TypeOffer:
		waitTransportStarted(sub)
		if err := sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
			return fmt.Errorf("sub offer: %w", err)
		}
		answer, err := sub.CreateAnswer(nil)
		if err != nil {
			return err
		}
		if err := sub.SetLocalDescription(answer); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Send(ctx, &wire.Message{Type: wire.TypeAnswer, PC: wire.PCSub, SDP: answer.SDP}); err != nil {
			return err
		}
		return c.remoteDescSet(sub, wire.PCSub)
	case wire.TypeCandidate:
		pc := sub
		if m.PC == wire.PCPub {
			pc = pub
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
	case wire.TypeForwarding, wire.TypeTrackPublished, wire.TypeTrackUnpublished:
		c.noteForwarding(m) // and on to Events (forwarding.go)
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
// pong, errors, forwarding. It is closed when the session ends.
func (c *Client) Events() <-chan *wire.Message { return c.events }

// Done is closed when the session ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Pub and Sub return the PeerConnections (Pub is nil when publishing
// nothing).
func (c *Client) Pub() *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pub
}
func (c *Client) Sub() *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sub
}

// Leave says leave and closes everything.
//
// It waits (until ctx ends) for the server to close the socket after the
// leave: closing it first could reset the connection and lose the leave,
// and the server would then keep the participant for its resume window.
func (c *Client) Leave(ctx context.Context) error {
	c.closing.Store(true)
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
	c.closing.Store(true)
	c.mu.Lock()
	ws, pub, sub := c.ws, c.pub, c.sub
	c.mu.Unlock()
	ws.CloseNow()
	if pub != nil {
		pub.Close()
	}
	if sub != nil {
		sub.Close()
	}
}

// DropSocket closes only the WebSocket, keeping the PeerConnections, as a
// network change would (tests of resume).
func (c *Client) DropSocket() { c.conn().CloseNow() }

// waitTransportStarted waits, for at most five seconds, until pc's ICE
// transport has started after its first answer. pion starts it
// asynchronously, and a renegotiation applied before it has is taken for
// an ICE restart (the agent has no remote credentials yet to compare),
// which leaves the two sides with different credentials.
func waitTransportStarted(pc *webrtc.PeerConnection) {
	if pc.CurrentRemoteDescription() == nil {
		return
	}
	for i := 0; i < 1000 && pc.ICEConnectionState() == webrtc.ICEConnectionStateNew; i++ {
		time.Sleep(5 * time.Millisecond)
	}
}
