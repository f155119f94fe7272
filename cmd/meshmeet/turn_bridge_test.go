package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/turn"
)

// TestBridgeOnlyThroughTURN puts the bridge and the TURN server on a pion
// vnet WAN and two pion participants behind symmetric NATs whose UDP to
// the bridge is blocked (a WAN filter drops it). One publishes VP8; the
// other must receive it through the bridge, and both must have selected a
// relayed candidate pair: TURN is the only way in.
func TestBridgeOnlyThroughTURN(t *testing.T) {
	if testing.Short() {
		t.Skip("WebRTC over vnet: skipped under -short")
	}
	const turnIP, bridgeIP = "27.0.0.10", "27.0.0.20"
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: quiet})
	if err != nil {
		t.Fatal(err)
	}
	hostNet := func(ip string) *vnet.Net {
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{ip}})
		if err != nil {
			t.Fatal(err)
		}
		if err := wan.AddNet(n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	turnNet, bridgeNet := hostNet(turnIP), hostNet(bridgeIP)
	nat := &vnet.NATType{MappingBehavior: vnet.EndpointAddrPortDependent, FilteringBehavior: vnet.EndpointAddrPortDependent}
	lanNet := func(public, cidr, host string) *vnet.Net {
		lan, err := vnet.NewRouter(&vnet.RouterConfig{StaticIPs: []string{public}, CIDR: cidr, NATType: nat, LoggerFactory: quiet})
		if err != nil {
			t.Fatal(err)
		}
		n, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{host}})
		if err != nil {
			t.Fatal(err)
		}
		if err := lan.AddNet(n); err != nil {
			t.Fatal(err)
		}
		if err := wan.AddRouter(lan); err != nil {
			t.Fatal(err)
		}
		return n
	}
	netA := lanNet("27.0.0.1", "192.168.1.0/24", "192.168.1.2")
	netB := lanNet("27.0.0.2", "10.2.0.0/24", "10.2.0.2")
	clients := map[string]bool{"27.0.0.1": true, "27.0.0.2": true}
	var blocked atomic.Int64
	wan.AddChunkFilter(func(c vnet.Chunk) bool {
		src, _, _ := net.SplitHostPort(c.SourceAddr().String())
		dst, _, _ := net.SplitHostPort(c.DestinationAddr().String())
		if c.Network() == "udp" && (clients[src] && dst == bridgeIP || src == bridgeIP && clients[dst]) {
			blocked.Add(1)
			return false
		}
		return true
	})
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	defer wan.Stop()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// TURN, as startTURN configures it for a node whose public IP is turnIP.
	tpc, err := turnNet.ListenPacket("udp4", turnIP+":3478")
	if err != nil {
		t.Fatal(err)
	}
	secrets := turn.NewSecrets([]byte("bridge-test-secret-0123456789abc"))
	ts, err := turn.New(turn.Config{
		PacketConns:  []net.PacketConn{tpc},
		RelayIP:      netip.MustParseAddr(turnIP),
		RelayPortMin: 49152, RelayPortMax: 65535,
		Net:     turnNet,
		Secrets: secrets,
		Policy:  turn.NewPolicy(nil, nil, []uint16{7880}), // no bridge yet: SetBridges below
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	// The cluster's one bridge, as followBridges learns it from gossip.
	ts.SetBridges(bridgeAddrs([]mesh.Member{{Name: "bridge", State: "alive", Meta: mesh.NodeMeta{WebRTCAddr: bridgeIP + ":7882"}}}, nil))
	turnDone := make(chan error, 1)
	go func() { turnDone <- ts.Run(ctx) }()
	defer func() { cancel(); <-turnDone }()

	// The bridge on its own public address.
	bpc, err := bridgeNet.ListenPacket("udp4", bridgeIP+":7882")
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(bridge.Config{UDPConn: bpc, PublicIPs: []string{bridgeIP}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	brDone := make(chan error, 1)
	go func() { brDone <- br.Run(ctx) }()
	defer func() { cancel(); <-brDone }()
	room := br.NewRoom("room", bridge.RoomEvents{})
	defer room.Close()

	iceServers := func() []webrtc.ICEServer {
		user, pass, err := secrets.MintFor(fmt.Sprintf("participant-%d", time.Now().UnixNano()), turn.DefaultCredentialTTL, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return []webrtc.ICEServer{{URLs: []string{"turn:" + turnIP + ":3478?transport=udp"}, Username: user, Credential: pass}}
	}
	a := newVClient(t, netA, room, "a", iceServers(), quiet)
	b := newVClient(t, netB, room, "b", iceServers(), quiet)

	sendThroughBridge(t, a, b)
	if blocked.Load() == 0 {
		t.Error("no direct UDP to the bridge was attempted and blocked")
	}
	if st := ts.Stats(); st.Allocations == 0 {
		t.Errorf("TURN stats %+v: no allocation", st)
	}
}

// sendThroughBridge publishes VP8 from a, waits until b has received 20
// packets through the bridge, and checks that a's publisher and b's
// subscriber PeerConnections selected relayed candidate pairs.
func sendThroughBridge(t *testing.T, a, b *vclient) {
	t.Helper()
	got := make(chan struct{}, 100)
	b.sub.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			select {
			case got <- struct{}{}:
			default:
			}
		}
	})
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "a-video")
	if err != nil {
		t.Fatal(err)
	}
	a.publish(track)

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// A VP8 keyframe-shaped payload: descriptor with S bit, then a
			// frame tag with the keyframe bit clear.
			payload := []byte{0x10, 0x00, 0x9d, 0x01, 0x2a, 0x10, 0x00, 0x10, 0x00, byte(seq)}
			track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 1800, Marker: true}, Payload: payload})
		}
	}()
	timeout := time.After(60 * time.Second) // a hang guard, not an assertion on speed
	for n := 0; n < 20; n++ {
		select {
		case <-got:
		case <-timeout:
			t.Fatalf("b received %d of 20 packets through the bridge; a pub ICE %s, b sub ICE %s",
				n, a.pub.ICEConnectionState(), b.sub.ICEConnectionState())
		}
	}
	for name, pc := range map[string]*webrtc.PeerConnection{"a pub": a.pub, "b sub": b.sub} {
		pair, err := selectedPairOf(pc)
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected pair: %v", name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("%s: selected pair %s does not go through TURN", name, pair)
		}
	}
}

// TestDevBridgeThroughTURN: in dev mode, participants limited to relayed
// candidates reach the real bridge through the dev-mode exception, over
// TURN/UDP (real sockets, so the TURN data plane relays the media) and over
// TURN/TCP (pion's path). The test fails when the exception does not cover
// the bridge's port.
func TestDevBridgeThroughTURN(t *testing.T) {
	if testing.Short() {
		t.Skip("WebRTC with a bridge: skipped under -short")
	}
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			quiet := logging.NewDefaultLoggerFactory()
			quiet.DefaultLogLevel = logging.LogLevelDisabled
			udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			br, err := bridge.New(bridge.Config{UDPConn: udp, PublicIPs: []string{"127.0.0.1"}, IncludeLoopback: true, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			g, gctx := errgroup.WithContext(ctx)
			g.Go(func() error { return br.Run(gctx) })
			cfg := testTURNConfig(t)
			cfg.RTCPort = udp.LocalAddr().(*net.UDPAddr).Port
			tn, err := startTURN(gctx, g, cfg, devKeys(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); g.Wait() }()
			ts := tn.Server
			room := br.NewRoom("room", bridge.RoomEvents{})
			defer room.Close()

			n := 0
			only := func() webrtc.Configuration {
				n++
				s := tn.ICEServers(fmt.Sprintf("participant-%d", n))[0]
				for _, u := range s.URLs {
					if strings.HasPrefix(u, "turn:") && strings.HasSuffix(u, "?transport="+transport) {
						return webrtc.Configuration{
							ICETransportPolicy: webrtc.ICETransportPolicyRelay,
							ICEServers:         []webrtc.ICEServer{{URLs: []string{u}, Username: s.Username, Credential: s.Credential}},
						}
					}
				}
				t.Fatalf("no TURN/%s URL in %v", transport, s.URLs)
				return webrtc.Configuration{}
			}
			a := newClientWith(t, nil, room, "a", only(), quiet)
			b := newClientWith(t, nil, room, "b", only(), quiet)
			before := ts.Stats().RelayedPackets
			sendThroughBridge(t, a, b)
			if st := ts.Stats(); st.RelayedPackets == before {
				t.Fatalf("the media did not cross the TURN server: %+v", st)
			}
		})
	}
}

// vclient is a participant on a vnet: a publisher and a subscriber
// PeerConnection signalled straight through the bridge API. Signalling runs
// on one goroutine.
type vclient struct {
	t        *testing.T
	p        *bridge.Participant
	pub, sub *webrtc.PeerConnection
	ops      chan func()
	done     chan struct{} // closed at cleanup
	early    [2][]webrtc.ICECandidateInit
}

// do queues a signalling step unless the client is being torn down.
func (c *vclient) do(f func()) {
	select {
	case c.ops <- f:
	case <-c.done:
	}
}

func newVClient(t *testing.T, n *vnet.Net, room *bridge.Room, id string, ice []webrtc.ICEServer, lf logging.LoggerFactory) *vclient {
	return newClientWith(t, n, room, id, webrtc.Configuration{ICEServers: ice}, lf)
}

// newClientWith is newVClient with a full configuration; a nil n means the
// host's network (loopback candidates included).
func newClientWith(t *testing.T, n *vnet.Net, room *bridge.Room, id string, conf webrtc.Configuration, lf logging.LoggerFactory) *vclient {
	t.Helper()
	se := webrtc.SettingEngine{}
	if n != nil {
		se.SetNet(n)
	} else {
		se.SetIncludeLoopbackCandidate(true)
	}
	se.SetICEMulticastDNSMode(iceMDNSDisabled)
	se.SetICETimeouts(5*time.Second, 10*time.Second, 500*time.Millisecond)
	se.LoggerFactory = lf
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	c := &vclient{t: t, ops: make(chan func(), 256)}
	var err error
	for _, pc := range []**webrtc.PeerConnection{&c.pub, &c.sub} {
		if *pc, err = api.NewPeerConnection(conf); err != nil {
			t.Fatal(err)
		}
	}
	done, loopDone := make(chan struct{}), make(chan struct{})
	c.done = done
	t.Cleanup(func() {
		close(done)
		<-loopDone // no signalling step runs after this
		if c.p != nil {
			c.p.Close()
		}
		c.pub.Close()
		c.sub.Close()
	})
	go func() {
		defer close(loopDone)
		for {
			select {
			case f := <-c.ops:
				f()
			case <-done:
				return
			}
		}
	}()
	c.p, err = room.Join(id, bridge.ParticipantEvents{
		Candidate: func(which bridge.PC, cand *webrtc.ICECandidateInit) {
			if cand == nil {
				return
			}
			cc := *cand
			c.do(func() {
				pc := c.pcOf(which)
				if pc.RemoteDescription() == nil {
					c.early[which] = append(c.early[which], cc)
					return
				}
				pc.AddICECandidate(cc)
			})
		},
		Offer: func(sdp string) {
			c.do(func() {
				// pion takes a renegotiation applied before the first
				// answer's ICE transport started for an ICE restart
				// (bridge.Participant.negotiateLocked).
				for i := 0; i < 1000 && c.sub.CurrentRemoteDescription() != nil && c.sub.ICEConnectionState() == webrtc.ICEConnectionStateNew; i++ {
					time.Sleep(5 * time.Millisecond)
				}
				if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
					if !closing(err) {
						t.Errorf("%s: sub offer: %v", id, err)
					}
					return
				}
				ans, err := c.sub.CreateAnswer(nil)
				if err == nil {
					err = c.sub.SetLocalDescription(ans)
				}
				if err == nil {
					c.flushEarly(bridge.PCSub)
					err = c.p.HandleAnswer(ans.SDP)
				}
				if err != nil && !closing(err) {
					t.Errorf("%s: sub answer: %v", id, err)
				}
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, which := range []bridge.PC{bridge.PCPub, bridge.PCSub} {
		which := which
		c.pcOf(which).OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand == nil {
				return
			}
			init := cand.ToJSON()
			c.do(func() { c.p.AddCandidate(which, init) })
		})
	}
	return c
}

// closing reports errors of a room or PeerConnection being torn down at
// the end of a test.
func closing(err error) bool {
	return errors.Is(err, bridge.ErrClosed) || errors.Is(err, webrtc.ErrConnectionClosed)
}

func (c *vclient) pcOf(which bridge.PC) *webrtc.PeerConnection {
	if which == bridge.PCSub {
		return c.sub
	}
	return c.pub
}

func (c *vclient) flushEarly(which bridge.PC) {
	for _, cand := range c.early[which] {
		c.pcOf(which).AddICECandidate(cand)
	}
	c.early[which] = nil
}

// publish adds track to the publisher PeerConnection and negotiates it.
func (c *vclient) publish(track webrtc.TrackLocal) {
	done := make(chan struct{})
	c.do(func() {
		defer close(done)
		sender, err := c.pub.AddTrack(track)
		if err != nil {
			c.t.Error(err)
			return
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := sender.Read(buf); err != nil {
					return
				}
			}
		}()
		offer, err := c.pub.CreateOffer(nil)
		if err == nil {
			err = c.pub.SetLocalDescription(offer)
		}
		var answer string
		if err == nil {
			answer, err = c.p.HandleOffer(offer.SDP)
		}
		if err == nil {
			err = c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer})
		}
		if err != nil {
			c.t.Errorf("publish: %v", err)
			return
		}
		c.flushEarly(bridge.PCPub)
	})
	<-done
}

func selectedPairOf(p *webrtc.PeerConnection) (*webrtc.ICECandidatePair, error) {
	for _, tr := range p.GetTransceivers() {
		if s := tr.Sender(); s != nil && s.Transport() != nil {
			return s.Transport().ICETransport().GetSelectedCandidatePair()
		}
		if r := tr.Receiver(); r != nil && r.Transport() != nil {
			return r.Transport().ICETransport().GetSelectedCandidatePair()
		}
	}
	return nil, nil
}

const iceMDNSDisabled = ice.MulticastDNSModeDisabled
