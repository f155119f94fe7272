package turn

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5/vnet"
	"github.com/pion/webrtc/v4"
)

// symmetricNAT maps and filters by remote address and port: peers behind
// two of them cannot reach each other directly, only through TURN.
var symmetricNAT = &vnet.NATType{
	MappingBehavior:   vnet.EndpointAddrPortDependent,
	FilteringBehavior: vnet.EndpointAddrPortDependent,
}

// TestMediaThroughTURNBehindSymmetricNAT connects two pion PeerConnections,
// each behind its own symmetric NAT on a pion vnet, through the TURN server
// on the WAN, and sends RTP from one to the other. The peers' private
// addresses are denied by the policy, as in production; the NATs' public
// addresses are allowed. The selected candidate pairs must involve a relay
// candidate and the server must hold allocations.
func TestMediaThroughTURNBehindSymmetricNAT(t *testing.T) {
	const turnIP = "27.0.0.10" // public addresses; the policy opens 27.0.0.0/24
	wan, err := vnet.NewRouter(&vnet.RouterConfig{CIDR: "0.0.0.0/0", LoggerFactory: quietLogs})
	if err != nil {
		t.Fatal(err)
	}
	turnNet, err := vnet.NewNet(&vnet.NetConfig{StaticIPs: []string{turnIP}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wan.AddNet(turnNet); err != nil {
		t.Fatal(err)
	}
	lanNet := func(public, cidr, host string) *vnet.Net {
		lan, err := vnet.NewRouter(&vnet.RouterConfig{StaticIPs: []string{public}, CIDR: cidr, NATType: symmetricNAT, LoggerFactory: quietLogs})
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
	if err := wan.Start(); err != nil {
		t.Fatal(err)
	}
	defer wan.Stop()

	pc, err := turnNet.ListenPacket("udp4", turnIP+":3478")
	if err != nil {
		t.Fatal(err)
	}
	secrets := NewSecrets(testSecret)
	srv, err := New(Config{
		PacketConns:  []net.PacketConn{pc},
		RelayIP:      netip.MustParseAddr(turnIP),
		RelayPortMin: 49152,
		RelayPortMax: 49999,
		Net:          turnNet,
		Secrets:      secrets,
		// The peers are each other's relayed and NAT addresses: open the
		// WAN as --turn-allow-peer would; private addresses stay denied.
		Policy:        NewPolicy([]netip.Prefix{netip.MustParsePrefix("27.0.0.0/24")}, nil, []uint16{7880}),
		Logger:        slog.New(slog.DiscardHandler),
		MaxBitrate:    -1,
		CredentialTTL: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	newPC := func(n *vnet.Net) *webrtc.PeerConnection {
		se := webrtc.SettingEngine{}
		se.SetNet(n)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetICETimeouts(5*time.Second, 10*time.Second, 500*time.Millisecond)
		se.LoggerFactory = quietLogs
		user, pass := secrets.Mint(time.Minute, time.Now())
		api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
		p, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: []webrtc.ICEServer{{
			URLs: []string{"turn:" + turnIP + ":3478?transport=udp"}, Username: user, Credential: pass,
		}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	relayedRTP(t, newPC(netA), newPC(netB))
	if st := srv.Stats(); st.Allocations == 0 || st.PeerDenied == 0 {
		t.Errorf("server stats %+v: want live allocations and denied private peers", st)
	}
}

// relayedRTP sends VP8-shaped RTP from a to b (non-trickle offer/answer)
// until b has 20 packets, then checks that both selected candidate pairs
// are relayed.
func relayedRTP(t *testing.T, a, b *webrtc.PeerConnection) {
	t.Helper()

	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "a")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := a.AddTrack(track)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	got := make(chan *rtp.Packet, 100)
	b.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			select {
			case got <- p:
			default:
			}
		}
	})

	// Non-trickle offer/answer: wait for gathering, then exchange.
	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gatherA := webrtc.GatheringCompletePromise(a)
	if err := a.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gatherA
	if err := b.SetRemoteDescription(*a.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := b.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gatherB := webrtc.GatheringCompletePromise(b)
	if err := b.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gatherB
	if err := a.SetRemoteDescription(*b.LocalDescription()); err != nil {
		t.Fatal(err)
	}

	// Send VP8-shaped RTP until b has received 20 packets in order.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			payload := []byte{0x10, 0x00, byte(seq), byte(seq >> 8)} // VP8 descriptor, S bit
			track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: true}, Payload: payload})
		}
	}()
	timeout := time.After(60 * time.Second) // a hang guard, not an assertion on speed
	for n := 0; n < 20; n++ {
		select {
		case p := <-got:
			if len(p.Payload) < 4 || p.Payload[0] != 0x10 {
				t.Fatalf("packet %d: payload %x", n, p.Payload)
			}
		case <-timeout:
			t.Fatalf("received %d of 20 RTP packets; ICE a=%s b=%s", n, a.ICEConnectionState(), b.ICEConnectionState())
		}
	}

	for name, p := range map[string]*webrtc.PeerConnection{"a": a, "b": b} {
		pair, err := selectedPair(p)
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected candidate pair: %v", name, err)
		}
		if pair.Local.Typ != webrtc.ICECandidateTypeRelay && pair.Remote.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("%s: selected pair %s does not go through TURN", name, pair)
		}
	}
}

// TestMediaThroughTURNOverTCP connects two pion PeerConnections that may
// use only relayed candidates, obtained over TURN/TCP (as a participant
// whose network allows nothing but TCP), on loopback with real sockets.
func TestMediaThroughTURNOverTCP(t *testing.T) {
	ts := startServer(t, nil, func(c *Config) { c.MaxBitrate = -1 })
	newPC := func() *webrtc.PeerConnection {
		se := webrtc.SettingEngine{}
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetIncludeLoopbackCandidate(true)
		se.SetICETimeouts(5*time.Second, 10*time.Second, 500*time.Millisecond)
		se.LoggerFactory = quietLogs
		user, pass := ts.secrets.Mint(time.Minute, time.Now())
		p, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{
			ICETransportPolicy: webrtc.ICETransportPolicyRelay,
			ICEServers: []webrtc.ICEServer{{
				URLs: []string{"turn:" + ts.tcp + "?transport=tcp"}, Username: user, Credential: pass,
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	relayedRTP(t, newPC(), newPC())
	ts.mu.Lock()
	tcpConns := len(ts.tcp)
	ts.mu.Unlock()
	if st := ts.Stats(); st.Allocations < 2 || tcpConns < 2 {
		t.Errorf("server stats %+v, %d TURN/TCP connections: want the two relays, over TCP", st, tcpConns)
	}
}

func selectedPair(p *webrtc.PeerConnection) (*webrtc.ICECandidatePair, error) {
	for _, tr := range p.GetTransceivers() {
		if s := tr.Sender(); s != nil && s.Transport() != nil {
			return s.Transport().ICETransport().GetSelectedCandidatePair()
		}
		if r := tr.Receiver(); r != nil && r.Transport() != nil {
			return r.Transport().ICETransport().GetSelectedCandidatePair()
		}
	}
	return nil, fmt.Errorf("no transport")
}
