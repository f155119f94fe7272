package bridge

import (
	"net"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"
)

// startTURN runs a pion TURN server on loopback (long-term credentials,
// relays on 127.0.0.1) until the test ends, and returns the ICE server a
// client uses to reach it.
func startTURN(t *testing.T) webrtc.ICEServer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
	const user, pass, realm = "test", "secret", "meshmeet.test"
	key := turn.GenerateAuthKey(user, realm, pass)
	s, err := turn.NewServer(turn.ServerConfig{
		Realm: realm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, key, ra.Username == user
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            conn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1", Net: n},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return webrtc.ICEServer{URLs: []string{"turn:" + conn.LocalAddr().String() + "?transport=udp"}, Username: user, Credential: pass}
}

// slowNet is the standard network, except that every UDP socket pion
// binds for host and server-reflexive candidates (ListenUDP) sends each
// datagram d late; the sockets of TURN allocations (ListenPacket) do not.
// The client's direct paths answer later than its path through TURN, as a
// direct path whose first checks are lost does.
type slowNet struct {
	*stdnet.Net
	d time.Duration
}

func (n *slowNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	return &slowConn{UDPConn: c, d: n.d}, nil
}

type slowConn struct {
	transport.UDPConn
	d time.Duration
}

func (c *slowConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	p := append([]byte(nil), b...)
	time.AfterFunc(c.d, func() { _, _ = c.UDPConn.WriteTo(p, addr) })
	return len(b), nil
}

func (c *slowConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) { return c.WriteTo(b, addr) }

func (c *slowConn) WriteMsgUDP(b, _ []byte, addr *net.UDPAddr) (int, int, error) {
	n, err := c.WriteTo(b, addr)
	return n, 0, err
}

// slowDirectAPI is clientAPI on a slowNet.
func slowDirectAPI(t *testing.T, delay time.Duration) *webrtc.API {
	t.Helper()
	n, err := stdnet.NewNet()
	if err != nil {
		t.Fatal(err)
	}
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
	se.SetNet(&slowNet{Net: n, d: delay})
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.DisableSRTPReplayProtection(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

// selectedPair waits for pc's ICE transport to select a candidate pair.
func selectedPair(t *testing.T, who string, pc *webrtc.PeerConnection) *webrtc.ICECandidatePair {
	t.Helper()
	var pair *webrtc.ICECandidatePair
	eventually(t, 20*time.Second, who+" selects a candidate pair", func() bool {
		// Not before the transport has started: pion's
		// GetSelectedCandidatePair races with its start.
		if s := pc.ICEConnectionState(); s != webrtc.ICEConnectionStateConnected && s != webrtc.ICEConnectionStateCompleted {
			return false
		}
		pair, _ = pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		return pair != nil && pair.Local != nil && pair.Remote != nil
	})
	return pair
}

// logPairs logs the candidate pairs pc's agent has checked.
func logPairs(t *testing.T, who string, pc *webrtc.PeerConnection) {
	t.Helper()
	st := pc.GetStats()
	for _, v := range st {
		if p, ok := v.(webrtc.ICECandidatePairStats); ok {
			l, _ := st[p.LocalCandidateID].(webrtc.ICECandidateStats)
			r, _ := st[p.RemoteCandidateID].(webrtc.ICECandidateStats)
			t.Logf("%s: pair %s:%d (%s) -> %s:%d (%s): %s, nominated %v, %d responses",
				who, l.IP, l.Port, l.CandidateType, r.IP, r.Port, r.CandidateType, p.State, p.Nominated, p.ResponsesReceived)
		}
	}
}

// TestRelayedPairChoice: on the subscriber PeerConnection, where the bridge
// nominates, a client that has a direct path ends on it even when its path
// through TURN answers first, and a TURN-only client ends on its relayed
// candidate (the bridge then nominates it without the old fixed wait:
// relayhold.go). Checked from the bridge's side and from the client's.
//
// The direct client's host and server-reflexive sockets send 250 ms late,
// so its relayed pair answers first: with no relay wait and no hold the
// bridge nominates it.
func TestRelayedPairChoice(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	for _, tc := range []struct {
		name   string
		policy webrtc.ICETransportPolicy
		slow   bool // host and relayed candidates, host path slower
		relay  bool // want a relayed pair
	}{
		{"direct and TURN, direct path slower", webrtc.ICETransportPolicyAll, true, false},
		{"TURN only", webrtc.ICETransportPolicyRelay, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startTURN(t)
			b := startBridge(t)
			r := b.NewRoom("room-relay", RoomEvents{})
			api := clientAPI(t)
			if tc.slow {
				api = slowDirectAPI(t, 250*time.Millisecond)
			}
			c := newClient(t, api, r, "client")
			defer c.close()
			cfg := webrtc.Configuration{ICEServers: []webrtc.ICEServer{ts}, ICETransportPolicy: tc.policy}
			for _, pc := range []*webrtc.PeerConnection{c.pub, c.sub} {
				if err := pc.SetConfiguration(cfg); err != nil {
					t.Fatal(err)
				}
			}
			// The client publishes first: its publisher PeerConnection
			// connects before its subscriber one gets an offer.
			c.publish(nil)
			pubPair := selectedPair(t, "bridge publisher PC", c.p.pubPC)
			t.Logf("publisher PC, bridge side: local %s, remote %s", pubPair.Local.Typ, pubPair.Remote.Typ)
			other := newClient(t, clientAPI(t), r, "other")
			defer other.close()
			other.publish(nil)
			bridgeSide := selectedPair(t, "bridge subscriber PC", c.p.subPC)
			clientSide := selectedPair(t, "client subscriber PC", c.sub)
			t.Logf("subscriber PC, bridge side: local %s, remote %s; client side: local %s, remote %s",
				bridgeSide.Local, bridgeSide.Remote, clientSide.Local, clientSide.Remote)
			logPairs(t, "bridge subscriber PC", c.p.subPC)
			same := func(a, b *webrtc.ICECandidate) bool { return a.Address == b.Address && a.Port == b.Port }
			if !same(bridgeSide.Remote, clientSide.Local) || !same(bridgeSide.Local, clientSide.Remote) {
				t.Errorf("the bridge and the client selected different pairs")
			}
			if bridgeSide.Local.Typ != webrtc.ICECandidateTypeHost {
				t.Errorf("bridge's local candidate is %s, want host", bridgeSide.Local.Typ)
			}
			relayed := webrtc.ICECandidateTypeRelay
			if tc.relay {
				if clientSide.Local.Typ != relayed {
					t.Errorf("TURN-only client's local candidate is %s, want relay", clientSide.Local.Typ)
				}
				return
			}
			// The client did have a relayed candidate to offer.
			hasRelay := false
			for _, v := range c.sub.GetStats() {
				if cs, ok := v.(webrtc.ICECandidateStats); ok && cs.Type == webrtc.StatsTypeLocalCandidate && cs.CandidateType == relayed {
					hasRelay = true
				}
			}
			if !hasRelay {
				t.Errorf("the client gathered no relayed candidate")
			}
			if clientSide.Local.Typ == relayed || bridgeSide.Remote.Typ == relayed {
				t.Errorf("a client with a direct path ended on TURN: bridge remote %s, client local %s", bridgeSide.Remote.Typ, clientSide.Local.Typ)
			}
		})
	}
}

// TestRelayHoldRules: which relayed candidates of the subscriber
// PeerConnection wait, and what lets them through.
func TestRelayHoldRules(t *testing.T) {
	b := startBridge(t)
	r := b.NewRoom("room-hold", RoomEvents{})
	const (
		host  = "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"
		relay = "candidate:2 1 udp 16777215 127.0.0.1 6000 typ relay raddr 0.0.0.0 rport 0"
	)
	join := func(id string) *Participant {
		p, err := r.Join(id, ParticipantEvents{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p
	}
	add := func(p *Participant, which PC, c string) {
		if err := p.AddCandidate(which, webrtc.ICECandidateInit{Candidate: c}); err != nil {
			t.Fatal(err)
		}
	}
	// state reports how many candidates wait for the subscriber's remote
	// description, and how many are held.
	state := func(p *Participant) (early, held int) {
		p.negMu.Lock()
		defer p.negMu.Unlock()
		return len(p.early[PCSub]), len(p.relay.held)
	}

	// TURN only: nothing but relayed candidates, none held.
	p := join("turn-only")
	add(p, PCPub, relay)
	add(p, PCSub, relay)
	if e, h := state(p); e != 1 || h != 0 {
		t.Errorf("TURN-only client: %d early, %d held; want 1, 0", e, h)
	}

	// A direct candidate holds relayed ones back; a publisher pair through
	// TURN lets them through.
	p = join("pub-through-turn")
	add(p, PCPub, host)
	add(p, PCSub, relay)
	if e, h := state(p); e != 0 || h != 1 {
		t.Errorf("client with a host candidate: %d early, %d held; want 0, 1", e, h)
	}
	p.pubSelected(&webrtc.ICECandidatePair{
		Local:  &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypeHost},
		Remote: &webrtc.ICECandidate{Typ: webrtc.ICECandidateTypeRelay},
	})
	if e, h := state(p); e != 1 || h != 0 {
		t.Errorf("after a publisher pair through TURN: %d early, %d held; want 1, 0", e, h)
	}

	// Otherwise they wait for the deadline after the checks began.
	p = join("deadline")
	add(p, PCSub, host)
	add(p, PCSub, relay)
	if e, h := state(p); e != 1 || h != 1 {
		t.Errorf("client with a host candidate: %d early, %d held; want 1, 1", e, h)
	}
	p.subChecking()
	eventually(t, 20*time.Second, "held candidates released after the deadline", func() bool {
		e, h := state(p)
		return e == 2 && h == 0
	})
}
