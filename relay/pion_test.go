package relay

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bridge"
)

// pionClient is a WebRTC participant (pion) of one bridge room: it
// publishes one Opus track and records what it receives.
type pionClient struct {
	t        testing.TB
	p        *bridge.Participant
	pub, sub *webrtc.PeerConnection
	ops      chan func()
	done     chan struct{}

	mu    sync.Mutex
	early [2][]webrtc.ICECandidateInit
	got   map[string]map[uint16]bool // by track ID: sequence numbers with intact payloads
	track *webrtc.TrackLocalStaticRTP
}

func clientAPI(t testing.TB) *webrtc.API {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se), webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

func joinPion(t testing.TB, rm *bridge.Room, id string) *pionClient {
	t.Helper()
	api := clientAPI(t)
	c := &pionClient{t: t, ops: make(chan func(), 64), done: make(chan struct{}), got: map[string]map[uint16]bool{}}
	var err error
	if c.pub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	if c.sub, err = api.NewPeerConnection(webrtc.Configuration{}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case f := <-c.ops:
				f()
			case <-c.done:
				return
			}
		}
	}()
	c.p, err = rm.Join(id, bridge.ParticipantEvents{
		Candidate: func(pc bridge.PC, cand *webrtc.ICECandidateInit) {
			if cand == nil {
				return
			}
			cc := *cand
			c.do(func() {
				target := c.pub
				if pc == bridge.PCSub {
					target = c.sub
				}
				if target.RemoteDescription() == nil {
					c.early[pc] = append(c.early[pc], cc)
					return
				}
				target.AddICECandidate(cc)
			})
		},
		Offer: func(sdp string) { c.do(func() { c.answer(sdp) }) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, pc := range []*webrtc.PeerConnection{c.pub, c.sub} {
		which := bridge.PC(i)
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				init := cand.ToJSON()
				c.do(func() { c.p.AddCandidate(which, init) })
			}
		})
	}
	c.sub.OnTrack(c.onTrack)
	t.Cleanup(func() {
		c.p.Close()
		close(c.done)
		c.pub.Close()
		c.sub.Close()
	})
	return c
}

func (c *pionClient) do(f func()) {
	select {
	case c.ops <- f:
	case <-c.done:
	}
}

func (c *pionClient) flushEarly() {
	for i, pc := range []*webrtc.PeerConnection{c.pub, c.sub} {
		if pc.RemoteDescription() != nil {
			for _, cand := range c.early[i] {
				pc.AddICECandidate(cand)
			}
			c.early[i] = nil
		}
	}
}

func (c *pionClient) answer(offer string) {
	// pion takes a renegotiation applied before the first answer's ICE
	// transport started for an ICE restart (bridge.Participant.negotiateLocked).
	for i := 0; i < 1000 && c.sub.CurrentRemoteDescription() != nil && c.sub.ICEConnectionState() == webrtc.ICEConnectionStateNew; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.sub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return
	}
	ans, err := c.sub.CreateAnswer(nil)
	if err != nil || c.sub.SetLocalDescription(ans) != nil {
		return
	}
	c.flushEarly()
	c.p.HandleAnswer(ans.SDP)
}

// publish sends the client's Opus track to its bridge.
func (c *pionClient) publish(id string) {
	tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, id, "s-"+id)
	if err != nil {
		c.t.Fatal(err)
	}
	sender, err := c.pub.AddTrack(tr)
	if err != nil {
		c.t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	c.track = tr
	done := make(chan struct{})
	c.do(func() {
		defer close(done)
		offer, err := c.pub.CreateOffer(nil)
		if err != nil || c.pub.SetLocalDescription(offer) != nil {
			c.t.Errorf("offer: %v", err)
			return
		}
		ans, err := c.p.HandleOffer(offer.SDP)
		if err != nil {
			c.t.Errorf("HandleOffer: %v", err)
			return
		}
		if err := c.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
			c.t.Errorf("answer: %v", err)
			return
		}
		c.flushEarly()
	})
	<-done
}

func (c *pionClient) write(seq uint16) {
	c.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: payloadFor(seq)})
}

func (c *pionClient) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	id := tr.ID()
	c.mu.Lock()
	c.got[id] = map[uint16]bool{}
	c.mu.Unlock()
	var pkt rtp.Packet
	buf := make([]byte, 1500)
	for {
		n, _, err := tr.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || string(pkt.Payload) != string(payloadFor(pkt.SequenceNumber)) {
			continue
		}
		c.mu.Lock()
		c.got[id][pkt.SequenceNumber] = true
		c.mu.Unlock()
	}
}

// received returns how many intact packets arrived on any track.
func (c *pionClient) received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.got {
		n += len(m)
	}
	return n
}

// TestPionParticipantsAcrossBridges: a WebRTC participant publishing on
// bridge a is heard by a WebRTC participant of bridge b and the other way
// round; the relay exports only each side's own track (the imported one
// is never sent back), so each link carries one track each way.
func TestPionParticipantsAcrossBridges(t *testing.T) {
	if testing.Short() {
		t.Skip("pion participants on two bridges: skipped under -short")
	}
	ca := newTestCA(t)
	a, b := startNode(t, ca, "a"), startNode(t, ca, "b")
	ra := a.attach(t, "conf", b)
	rb := b.attach(t, "conf", a)
	alice := joinPion(t, ra, "alice")
	bob := joinPion(t, rb, "bob")
	alice.publish("alice-mic")
	bob.publish("bob-mic")
	// A participant's track is published when its first packet arrives.
	var seq uint16
	waitFor(t, "tracks imported both ways", func() bool {
		seq++
		alice.write(seq)
		bob.write(seq)
		time.Sleep(5 * time.Millisecond)
		return len(ra.Tracks()) == 2 && len(rb.Tracks()) == 2
	})
	waitFor(t, "each hears the other", func() bool {
		seq++
		alice.write(seq)
		bob.write(seq)
		time.Sleep(5 * time.Millisecond)
		return alice.received() > 20 && bob.received() > 20
	})
	for _, n := range []*node{a, b} {
		st := n.relay.Stats()
		if st.ExportedTrack != 1 || st.ImportedTrack != 1 || st.Subscribed != 1 {
			t.Errorf("%s: exported %d (subscribed %d), imported %d; want 1 each", n.name, st.ExportedTrack, st.Subscribed, st.ImportedTrack)
		}
	}
}
