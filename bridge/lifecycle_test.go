package bridge

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestLifecycle covers the control side: no sub offer for a participant
// with nothing to receive, renegotiation as publishers come and go with
// m-lines reused, Failed when a client goes away, errors, and shutdown.
func TestLifecycle(t *testing.T) {
	before := goroutines()
	b := startBridge(t)
	var log roomLog
	r := b.NewRoom("room-lifecycle", log.events())
	api := clientAPI(t)

	alice := newClient(t, api, r, "alice")
	if _, err := r.Join("alice", ParticipantEvents{}); !errors.Is(err, ErrDuplicateParticipant) {
		t.Fatalf("second Join with the same ID: %v", err)
	}
	if err := alice.p.HandleAnswer("v=0"); !errors.Is(err, ErrNoPendingOffer) {
		t.Fatalf("HandleAnswer without an offer: %v", err)
	}
	if err := alice.p.AddCandidate(PC(7), webrtc.ICECandidateInit{}); !errors.Is(err, ErrUnknownPC) {
		t.Fatalf("AddCandidate on PC(7): %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := alice.offers.Load(); n != 0 {
		t.Fatalf("alice alone got %d sub offers, want none", n)
	}

	for i, name := range []string{"bob", "carol", "dave"} {
		pub := newClient(t, api, r, name)
		pub.kfEvery = 10
		pub.publish(nil)
		waitReceives(t, alice, r, 2)
		if i < 2 {
			pub.close()
			eventually(t, 10*time.Second, name+"'s tracks unpublished", func() bool { return len(r.Tracks()) == 0 })
			// Let the removal be negotiated so the next tracks reuse the m-lines.
			eventually(t, 10*time.Second, "alice's sub PC stable", func() bool {
				alice.p.negMu.Lock()
				defer alice.p.negMu.Unlock()
				return !alice.p.offerPending && !alice.p.needOffer
			})
			continue
		}
		if n := len(alice.p.subPC.GetTransceivers()); n > 2 {
			t.Errorf("alice's sub PC has %d transceivers after three publishers in turn, want 2 (reused)", n)
		}
		// dave's client vanishes: his PeerConnections close without a
		// word to signaling; the bridge reports it.
		_ = pub.pub.Close()
		_ = pub.sub.Close()
		eventually(t, 20*time.Second, "Failed for dave", func() bool {
			pub.mu.Lock()
			defer pub.mu.Unlock()
			return pub.failed != nil
		})
		pub.close()
	}
	pub, unpub := log.counts()
	if pub != 6 || unpub != 6 {
		t.Errorf("TrackPublished %d, TrackUnpublished %d, want 6 and 6", pub, unpub)
	}

	r.Close()
	if _, err := r.Join("erin", ParticipantEvents{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join on a closed room: %v", err)
	}
	alice.close()
	b.Close()
	if _, err := b.NewRoom("late", RoomEvents{}).Join("x", ParticipantEvents{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join on a closed bridge: %v", err)
	}
	checkGoroutines(t, before)
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrNoUDPConn) {
		t.Fatalf("New without UDPConn: %v", err)
	}
	before := goroutines()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := New(Config{UDPConn: conn}); err != nil {
		t.Fatal(err)
	}
	// New starts nothing: the count comes back to before (it may dip below
	// it, and rise for a moment, as an earlier test's goroutines end).
	checkGoroutines(t, before)
}

// TestPublicIPs: the bridge advertises Config.PublicIPs as its host
// candidates instead of the socket's address. The candidates are only
// inspected, never given to a client, so nothing is sent to that address.
func TestPublicIPs(t *testing.T) {
	before := goroutines()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{UDPConn: conn, PublicIPs: []string{"203.0.113.7"}, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cands := make(chan string, 16)
	p, err := b.NewRoom("room-nat", RoomEvents{}).Join("alice", ParticipantEvents{
		Candidate: func(pc PC, c *webrtc.ICECandidateInit) {
			if pc == PCPub && c != nil {
				cands <- c.Candidate
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	client, err := clientAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.AddTransceiverFromKind(webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := client.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.HandleOffer(offer.SDP); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-cands:
		if !strings.Contains(c, " 203.0.113.7 ") || strings.Contains(c, "127.0.0.1") || !strings.Contains(c, "typ host") {
			t.Fatalf("candidate %q, want a host candidate on the public IP", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no candidate")
	}
	p.Close()
	_ = client.Close()
	b.Close()
	checkGoroutines(t, before)
}
