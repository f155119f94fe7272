package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// canary listens on TCP and UDP at an address the bridge does not
// advertise and counts whatever reaches it.
type canary struct {
	tcp     net.Listener
	udp     net.PacketConn
	conns   atomic.Int64
	packets atomic.Int64
	wg      sync.WaitGroup
}

func newCanary(t *testing.T, ip string) *canary {
	t.Helper()
	ln, err := net.Listen("tcp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Skipf("cannot listen on %s (no 127.0.0.0/8 on lo?): %v", ip, err)
	}
	pc, err := net.ListenPacket("udp4", net.JoinHostPort(ip, "0"))
	if err != nil {
		ln.Close()
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	c := &canary{tcp: ln, udp: pc}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.conns.Add(1)
			conn.Close()
		}
	}()
	go func() {
		defer c.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			c.packets.Add(1)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		c.wg.Wait()
	})
	return c
}

func (c *canary) tcpPort() int { return c.tcp.Addr().(*net.TCPAddr).Port }
func (c *canary) udpPort() int { return c.udp.LocalAddr().(*net.UDPAddr).Port }

// hostile returns candidate attribute values (without "a=") that point at
// the canary in every form a client could use: host UDP, a passive TCP
// candidate (which a full ICE agent dials), server-reflexive, relayed, and
// the IPv4-mapped spelling of the same address.
func (c *canary) hostile(ip string) []string {
	tp, up := c.tcpPort(), c.udpPort()
	mapped := "::ffff:" + ip
	return []string{
		fmt.Sprintf("candidate:1 1 udp 2130706431 %s %d typ host", ip, up),
		fmt.Sprintf("candidate:2 1 tcp 1518280447 %s %d typ host tcptype passive", ip, tp),
		fmt.Sprintf("candidate:3 1 udp 1694498815 %s %d typ srflx raddr 0.0.0.0 rport 0", ip, up),
		fmt.Sprintf("candidate:4 1 udp 16777215 %s %d typ relay raddr 0.0.0.0 rport 0", ip, up),
		fmt.Sprintf("candidate:5 1 tcp 1518280447 %s %d typ host tcptype passive", mapped, tp),
		fmt.Sprintf("candidate:6 1 udp 2130706431 %s %d typ host", mapped, up),
	}
}

// startBridgeWith runs a bridge with UDP and ICE-TCP on 127.0.0.1 and the
// given candidate policy until the test ends.
func startBridgeWith(t *testing.T, allow func(netip.Addr) bool) *Bridge {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return runBridge(t, Config{UDPConn: conn, TCPListener: ln, IncludeLoopback: true, AllowRemoteCandidate: allow, Logger: testLogger()})
}

// TestBridgeDialsNobody: whatever candidates a participant trickles or
// puts in its SDP, the node sends nothing to an address its policy denies,
// TCP or UDP. With a policy that allows every address, ICE-lite and the
// absence of active ICE-TCP are what keep the publisher PeerConnection
// quiet (the subscriber one, a full ICE agent, checks what the policy
// allows, so it gets no candidates in that case); with the default policy
// every candidate for 127.0.0.2 is dropped on both.
func TestBridgeDialsNobody(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	const target = "127.0.0.2" // loopback, but not the bridge's 127.0.0.1
	for _, tc := range []struct {
		name  string
		allow func(netip.Addr) bool
		pcs   []PC
	}{
		{"policy allows all", func(netip.Addr) bool { return true }, []PC{PCPub}},
		{"default policy", nil, []PC{PCPub, PCSub}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			can := newCanary(t, target)
			b := startBridgeWith(t, tc.allow)
			r := b.NewRoom("room-canary", RoomEvents{})
			api := clientAPI(t)
			pub := newClient(t, api, r, "publisher")
			sub := newClient(t, api, r, "subscriber")
			mid := "0"
			trickle := func(c *client) {
				for _, which := range tc.pcs {
					for _, v := range can.hostile(target) {
						if err := c.p.AddCandidate(which, webrtc.ICECandidateInit{Candidate: v, SDPMid: &mid}); err != nil {
							t.Fatalf("AddCandidate %q: %v", v, err)
						}
					}
				}
			}
			// Before the remote descriptions (buffered) ...
			trickle(pub)
			trickle(sub)
			pub.publish(nil)
			waitReceives(t, sub, r, 2)
			// ... after them ...
			trickle(pub)
			trickle(sub)
			// ... and in the SDP of a renegotiation.
			offer, err := pub.pub.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := pub.pub.SetLocalDescription(offer); err != nil {
				t.Fatal(err)
			}
			var extra strings.Builder
			for _, v := range can.hostile(target) {
				extra.WriteString("a=" + v + "\r\n")
			}
			munged := strings.Replace(offer.SDP, "a=mid:0\r\n", "a=mid:0\r\n"+extra.String(), 1)
			if munged == offer.SDP {
				t.Fatal("offer has no a=mid:0 line to add candidates after")
			}
			ans, err := pub.p.HandleOffer(munged)
			if err != nil {
				t.Fatalf("HandleOffer with hostile candidates: %v", err)
			}
			if strings.Contains(ans, target) {
				t.Errorf("answer names %s", target)
			}
			done := make(chan struct{})
			pub.do(func() {
				defer close(done)
				if err := pub.pub.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans}); err != nil {
					t.Errorf("set answer: %v", err)
				}
			})
			<-done
			// Media still flows after the restart.
			before, _, _, _ := sub.track(r.Tracks()[0].ID).snapshot()
			eventually(t, 20*time.Second, "media after the renegotiation", func() bool {
				n, _, _, _ := sub.track(r.Tracks()[0].ID).snapshot()
				return n > before+20
			})
			// A full ICE agent checks a new candidate within a few hundred
			// milliseconds and dials a passive TCP one at once; give it
			// seconds.
			time.Sleep(3 * time.Second)
			if n, m := can.conns.Load(), can.packets.Load(); n != 0 || m != 0 {
				t.Errorf("the bridge reached %s: %d TCP connections, %d UDP packets", target, n, m)
			}
			st := b.Stats().Candidates
			t.Logf("refused candidates: %+v", st)
			if tc.allow == nil && st.Denied == 0 {
				t.Errorf("default policy denied no candidate: %+v", st)
			}
			pub.close()
			sub.close()
		})
	}
}

// TestRemoteCandidatePolicy checks which candidates a participant may
// give, trickled and in SDP, against a policy that denies private ranges
// as turn.Policy does, and the per-PeerConnection limit.
func TestRemoteCandidatePolicy(t *testing.T) {
	b := startBridgeWith(t, func(ip netip.Addr) bool {
		return !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && ip.IsGlobalUnicast()
	})
	r := b.NewRoom("room-policy", RoomEvents{})
	p, err := r.Join("p", ParticipantEvents{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Only the policy here: no relayed candidate is held back for a
	// direct path (relayhold.go, TestRelayedPairChoice).
	p.negMu.Lock()
	p.relay.released = true
	p.negMu.Unlock()

	for _, tc := range []struct {
		cand             string
		keepPub, keepSub bool
	}{
		{"candidate:1 1 udp 2130706431 8.8.8.8 5000 typ host", true, true},
		{"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", true, true},   // the bridge's own loopback
		{"candidate:1 1 udp 2130706431 127.0.0.2 5000 typ host", false, false}, // other loopback
		{"candidate:1 1 udp 2130706431 ::ffff:127.0.0.2 5000 typ host", false, false},
		{"candidate:1 1 tcp 1518280447 10.1.2.3 6379 typ host tcptype passive", false, false},
		{"candidate:1 1 udp 2130706431 169.254.169.254 80 typ host", false, false},
		{"candidate:1 1 udp 1694498815 192.168.1.9 5000 typ srflx raddr 0.0.0.0 rport 0", false, false},
		// Relayed: kept where the bridge is ICE-lite, checked where it is not.
		{"candidate:1 1 udp 16777215 10.9.9.9 5000 typ relay raddr 0.0.0.0 rport 0", true, false},
		{"candidate:1 1 udp 16777215 8.8.4.4 5000 typ relay raddr 0.0.0.0 rport 0", true, true},
		{"candidate:1 1 udp 2130706431 3f9a0c1e-0000-4000-8000-000000000000.local 5000 typ host", false, false},
	} {
		p.negMu.Lock()
		err := p.admitCandidateLocked(PCPub, tc.cand)
		got := p.filterSDPLocked(PCSub, "v=0\r\na="+tc.cand+"\r\na=end-of-candidates\r\n")
		p.negMu.Unlock()
		if (err == nil) != tc.keepPub {
			t.Errorf("%s: admit on PCPub: err %v, want kept %v", tc.cand, err, tc.keepPub)
		}
		if strings.Contains(got, tc.cand) != tc.keepSub || !strings.HasSuffix(got, "a=end-of-candidates\r\n") {
			t.Errorf("%s: filtered PCSub SDP %q, want kept %v", tc.cand, got, tc.keepSub)
		}
	}
	if err := p.AddCandidate(PCPub, webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host"}); err != nil {
		t.Errorf("AddCandidate of a private address: %v, want nil (dropped quietly)", err)
	}
	if err := p.AddCandidate(PCPub, webrtc.ICECandidateInit{Candidate: "candidate:garbage"}); !errors.Is(err, ErrBadCandidate) {
		t.Errorf("AddCandidate of garbage: %v, want ErrBadCandidate", err)
	}

	// The limit counts distinct candidates; a repeat is free.
	accepted := 0
	p.negMu.Lock()
	accepted = len(p.remote[PCPub])
	p.negMu.Unlock()
	var last error
	for i := 0; i < 2*maxRemoteCandidates && last == nil; i++ {
		c := fmt.Sprintf("candidate:1 1 udp 2130706431 8.8.%d.%d 5000 typ host", i/250, i%250)
		if last = p.AddCandidate(PCPub, webrtc.ICECandidateInit{Candidate: c}); last == nil {
			accepted++
		}
		if err := p.AddCandidate(PCPub, webrtc.ICECandidateInit{Candidate: c}); last == nil && err != nil {
			t.Fatalf("repeat of an accepted candidate: %v", err)
		}
	}
	if !errors.Is(last, ErrTooManyCandidates) || accepted != maxRemoteCandidates {
		t.Errorf("after %d accepted: %v, want ErrTooManyCandidates after %d", accepted, last, maxRemoteCandidates)
	}
	sdp := "v=0\r\na=candidate:1 1 udp 2130706431 9.9.9.9 5000 typ host\r\n"
	p.negMu.Lock()
	got := p.filterSDPLocked(PCPub, sdp)
	p.negMu.Unlock()
	if strings.Contains(got, "9.9.9.9") {
		t.Errorf("SDP candidate beyond the limit kept: %q", got)
	}
	st := b.Stats().Candidates
	if st.Denied == 0 || st.OverLimit == 0 || st.Malformed == 0 {
		t.Errorf("refusals not counted: %+v", st)
	}
}
