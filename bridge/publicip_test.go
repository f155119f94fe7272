package bridge

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// TestPublicIPsOnlyInCandidates: with PublicIPs set and the media sockets
// on every interface, each candidate the bridge gives a participant, on
// either PeerConnection, trickled or in SDP, UDP or TCP, names a public
// address and never one of the node's interfaces (on this machine eth0
// has a private IPv4, a ULA and a link-local IPv6 address).
func TestPublicIPsOnlyInCandidates(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	const public = "203.0.113.7"
	udp, err := net.ListenPacket("udp", ":0") // dual stack, every interface
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{UDPConn: udp, TCPListener: tcp, PublicIPs: []string{public}, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	var mu sync.Mutex
	var cands []string // every candidate the participants were given
	var complete [2]int
	var offers []string
	events := func() ParticipantEvents {
		return ParticipantEvents{
			Candidate: func(pc PC, c *webrtc.ICECandidateInit) {
				mu.Lock()
				defer mu.Unlock()
				if c == nil {
					complete[pc]++
					return
				}
				cands = append(cands, c.Candidate)
			},
			Offer: func(sdp string) {
				mu.Lock()
				offers = append(offers, sdp)
				mu.Unlock()
			},
		}
	}
	r := b.NewRoom("room-public", RoomEvents{})
	// The publisher offers audio; the bridge answers (publisher side) and
	// offers the track to the subscriber (subscriber side).
	pubP, err := r.Join("publisher", events())
	if err != nil {
		t.Fatal(err)
	}
	defer pubP.Close()
	subP, err := r.Join("subscriber", events())
	if err != nil {
		t.Fatal(err)
	}
	defer subP.Close()
	api := clientAPI(t)
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	track, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "publisher")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, err := pubP.HandleOffer(offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	// The track is published when its first packet arrives, which needs a
	// working path; the subscriber side is checked by offering it a track
	// directly instead.
	subP.negMu.Lock()
	_, err = subP.subPC.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	subP.negMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	subP.negotiate()

	eventually(t, 20*time.Second, "gathering complete on both PeerConnections", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return complete[PCPub] > 0 && complete[PCSub] > 0
	})
	// Descriptions the participants get: the answer, the sub offer, and
	// what the bridge would send now that gathering is complete.
	sdps := []string{answer, b.filterLocalSDP(pubP.pubPC.LocalDescription().SDP), b.filterLocalSDP(subP.subPC.LocalDescription().SDP)}
	mu.Lock()
	sdps = append(sdps, offers...)
	all := append([]string(nil), cands...)
	mu.Unlock()
	if len(offers) == 0 {
		t.Fatal("no subscriber offer")
	}
	for _, s := range sdps {
		for _, line := range strings.Split(s, "\r\n") {
			if v, ok := strings.CutPrefix(line, "a="); ok && strings.HasPrefix(v, "candidate:") {
				all = append(all, v)
			}
		}
	}
	var udpSeen, tcpSeen bool
	for _, v := range all {
		c, err := ice.UnmarshalCandidate(v)
		if err != nil {
			t.Fatalf("candidate %q: %v", v, err)
		}
		if c.Address() != public {
			t.Errorf("candidate names %s, want only %s: %s", c.Address(), public, v)
		}
		if c.TCPType() == ice.TCPTypeActive {
			t.Errorf("active TCP candidate: %s", v)
		}
		udpSeen = udpSeen || c.NetworkType().IsUDP()
		tcpSeen = tcpSeen || c.NetworkType().IsTCP()
	}
	if !udpSeen || !tcpSeen {
		t.Errorf("candidates %q: want UDP and TCP ones", all)
	}
}
