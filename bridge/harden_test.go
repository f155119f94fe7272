package bridge

import (
	"context"
	"errors"
	"fmt"
	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// TestBadOfferDoesNotWedge: an offer the bridge cannot answer is refused
// and leaves the publisher PeerConnection able to take the next offer (the
// client publishes and is received afterwards); one that pion accepts and
// then cannot answer, which pion cannot roll back, ends the participant's
// media with ErrNegotiationFailed instead of wedging it.
func TestBadOfferDoesNotWedge(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	b := startBridge(t)
	r := b.NewRoom("room-bad-offer", RoomEvents{})
	api := clientAPI(t)
	sub := newClient(t, api, r, "subscriber")
	defer sub.close()

	offerOf := func(c *client) string {
		t.Helper()
		tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "probe", c.id)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.pub.AddTrack(tr)
		if err != nil {
			t.Fatal(err)
		}
		offer, err := c.pub.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.pub.RemoveTrack(s); err != nil {
			t.Fatal(err)
		}
		return offer.SDP
	}

	pub := newClient(t, api, r, "publisher")
	defer pub.close()
	good := offerOf(pub)
	for name, bad := range map[string]string{
		"no mid":         strings.NewReplacer("a=mid:0\r\n", "", "a=group:BUNDLE 0\r\n", "").Replace(good),
		"no fingerprint": dropLines(good, "a=fingerprint:"),
		"not SDP":        "hello",
	} {
		if _, err := pub.p.HandleOffer(bad); !errors.Is(err, ErrBadOffer) {
			t.Fatalf("%s: HandleOffer: %v, want ErrBadOffer", name, err)
		}
	}
	// The PeerConnection still negotiates: publish and be received.
	pub.publish(nil)
	waitReceives(t, sub, r, 2)

	// Plan B (two streams in one m-line) passes the bridge's checks, and
	// pion accepts it before it fails to answer: media ends, clearly.
	wedger := newClient(t, api, r, "wedger")
	defer wedger.close()
	planB := strings.Replace(offerOf(wedger), "a=mid:0\r\n", "a=mid:0\r\na=ssrc:1 msid:a b\r\na=ssrc:2 msid:c d\r\n", 1)
	_, err := wedger.p.HandleOffer(planB)
	if !errors.Is(err, ErrNegotiationFailed) {
		t.Fatalf("Plan B offer: %v, want ErrNegotiationFailed", err)
	}
	if strings.Contains(err.Error(), "msid") || strings.Contains(err.Error(), "Plan") {
		t.Errorf("error text quotes pion's verdict on the client's SDP: %q", err)
	}
	wedger.mu.Lock()
	failed := wedger.failed
	wedger.mu.Unlock()
	if !errors.Is(failed, ErrNegotiationFailed) {
		t.Errorf("Failed reported %v, want ErrNegotiationFailed", failed)
	}
}

// dropLines removes the lines of sdp that start with prefix.
func dropLines(sdp, prefix string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

// TestTrackCap: an offer that sends more tracks than
// MaxTracksPerParticipant is refused; one at the cap is answered.
func TestTrackCap(t *testing.T) {
	b := startBridge(t)
	r := b.NewRoom("room-track-cap", RoomEvents{})
	api := clientAPI(t)
	for _, tc := range []struct {
		tracks int
		want   error
	}{
		{DefaultMaxTracksPerParticipant, nil},
		{DefaultMaxTracksPerParticipant + 1, ErrTooManyTracks},
		{50, ErrTooManyTracks},
	} {
		c := newClient(t, api, r, fmt.Sprintf("tracks-%d", tc.tracks))
		for i := 0; i < tc.tracks; i++ {
			tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, fmt.Sprintf("a%d", i), c.id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.pub.AddTrack(tr); err != nil {
				t.Fatal(err)
			}
		}
		// A receive-only m-line does not count.
		if _, err := c.pub.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
		offer, err := c.pub.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.p.HandleOffer(offer.SDP)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%d tracks: HandleOffer: %v, want %v", tc.tracks, err, tc.want)
		}
		c.close()
	}
}

// TestICEPasswordNotLogged: at debug level, with pion's ICE agent logging
// the remote password as it starts, no participant's ICE password reaches
// the log.
func TestICEPasswordNotLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	var buf syncbuf.Buffer
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{UDPConn: conn, IncludeLoopback: true, Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	r := b.NewRoom("room-log", RoomEvents{})
	api := clientAPI(t)
	pub := newClient(t, api, r, "publisher")
	sub := newClient(t, api, r, "subscriber")
	pub.publish(nil)
	waitReceives(t, sub, r, 2)
	var pwds []string
	for _, c := range []*client{pub, sub} {
		for _, pc := range []*webrtc.PeerConnection{c.pub, c.sub} {
			d := pc.LocalDescription()
			if d == nil {
				continue
			}
			for _, l := range strings.Split(d.SDP, "\r\n") {
				if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok {
					pwds = append(pwds, v)
				}
			}
		}
	}
	pub.close()
	sub.close()
	eventually(t, 5*time.Second, "log written", func() bool { return strings.Contains(buf.String(), "participant left") })
	out := buf.String()
	if len(pwds) < 3 {
		t.Fatalf("found %d client ICE passwords, want at least 3", len(pwds))
	}
	for _, pwd := range pwds {
		if strings.Contains(out, pwd) {
			t.Errorf("a participant's ICE password is in the debug log")
		}
	}
	if !strings.Contains(out, "remotePwd: <redacted>") {
		t.Errorf("pion's agent start line (remotePwd) not seen: the test proves nothing")
	}
}
