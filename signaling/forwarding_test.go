package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// startVideoOnly joins a participant that publishes simulcast video and no
// audio: it never speaks, so last-N orders it among the silent ones.
func startVideoOnly(ctx context.Context, t *testing.T, n *node, room string, tag uint32) *client.Client {
	t.Helper()
	src := &client.Synth{Sender: tag}
	video, err := client.NewSimulcastVideo("v", fmt.Sprintf("s%d", tag), mediaLayers)
	if err != nil {
		t.Fatal(err)
	}
	c := join(t, n, room, client.Options{Name: fmt.Sprintf("V%d", tag), Simulcast: video, OnKeyframeRequest: src.RequestKeyframe})
	src.Ext = c.Ext
	go src.RunSimulcast(ctx, video, client.VideoOptions{Layers: mediaLayers})
	return c
}

// TestForwardingTellsForwardedVideos: with last-N at 1 and more video
// publishers, a participant is sent forwarding messages that list exactly
// the videos inside the set (the speaker's, a pinned one; never the paused
// ones), follow a new speaker, and come again after a resume; the client
// then reports the unlisted videos it knew of as paused.
func TestForwardingTellsForwardedVideos(t *testing.T) {
	if testing.Short() {
		t.Skip("media test skipped in -short mode")
	}
	n := lastNNode(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	room := roomname.New()
	s := join(t, n, room, client.Options{Name: "Watcher"})
	a := startVideoOnly(ctx, t, n, room, 1)
	b := startVideoOnly(ctx, t, n, room, 2)

	videoOf := map[string]string{} // participant → its video track ID, as s learned it
	// next waits for the forwarding message that lists exactly fwd's
	// videos, noting announced tracks meanwhile; then the client must
	// report paused's videos as paused, and fwd's not.
	next := func(what string, fwd, paused []*client.Client) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		var last []string
		for {
			var ids []string
			ok := true
			for _, w := range append(slices.Clone(fwd), paused...) {
				ok = ok && videoOf[w.Welcome.Participant] != ""
			}
			for _, w := range fwd {
				ids = append(ids, videoOf[w.Welcome.Participant])
			}
			slices.Sort(ids)
			if ok && slices.Equal(last, ids) {
				for _, w := range paused {
					if id := videoOf[w.Welcome.Participant]; !s.Paused(id) {
						t.Fatalf("%s: client.Paused(%s) false, the message did not list it", what, id)
					}
				}
				for _, id := range ids {
					if s.Paused(id) {
						t.Fatalf("%s: client.Paused(%s) true, the message listed it", what, id)
					}
				}
				return
			}
			select {
			case m, ok := <-s.Events():
				if !ok {
					t.Fatalf("%s: session ended: %v", what, s.Err())
				}
				switch m.Type {
				case wire.TypeTrackPublished:
					if m.Track.Kind == wire.KindVideo {
						videoOf[m.Track.Participant] = m.Track.ID
					}
				case wire.TypeForwarding:
					if m.All {
						t.Fatalf("%s: forwarding all with last-N 1 and more publishers", what)
					}
					last = m.Video
				}
			case <-deadline:
				t.Fatalf("%s: timed out; last forwarding listed %v, videos %v", what, last, videoOf)
			}
		}
	}
	cs := func(c ...*client.Client) []*client.Client { return c }
	// Nobody speaks: the set is the first publisher in ID order.
	first, second := a, b
	if b.Welcome.Participant < a.Welcome.Participant {
		first, second = b, a
	}
	next("two silent publishers", cs(first), cs(second))

	// A third publisher that talks all the time becomes the one recent
	// speaker: both silent publishers' videos are paused.
	sp := startPublisher(ctx, t, n, room, 3).c
	next("a speaker joined", cs(sp), cs(a, b))
	// Pinning a's video takes it out of the paused set.
	if err := s.Send(ctx, &wire.Message{Type: wire.TypePrefs, TrackID: videoOf[a.Welcome.Participant], MaxHeight: 180, Pin: true}); err != nil {
		t.Fatal(err)
	}
	next("a's video pinned", cs(a, sp), cs(b))

	// After a resume the state comes again, after the welcome.
	s.DropSocket()
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	ws, _, err := websocket.Dial(rctx, "ws"+strings.TrimPrefix(n.URL, "http")+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(4 << 20)
	res, _ := json.Marshal(&wire.Message{Type: wire.TypeJoin, Version: 1, Room: room,
		Resume: &wire.Resume{Participant: s.Welcome.Participant, Secret: s.Welcome.Secret}})
	if err := ws.Write(rctx, websocket.MessageText, res); err != nil {
		t.Fatal(err)
	}
	want := []string{videoOf[a.Welcome.Participant], videoOf[sp.Welcome.Participant]}
	slices.Sort(want)
	welcomed := false
	for {
		_, data, err := ws.Read(rctx)
		if err != nil {
			t.Fatalf("after resume (welcomed %v): %v", welcomed, err)
		}
		var m wire.Message
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == wire.TypeWelcome {
			welcomed = true
		}
		if m.Type == wire.TypeForwarding {
			if !welcomed {
				t.Fatalf("forwarding before the resumed welcome")
			}
			if !m.All && slices.Equal(m.Video, want) {
				break
			}
		}
	}
}

// TestForwardingPausesWelcomeTracks: a client that joins after the videos
// were published learns of them from its welcome, not from track-published;
// the forwarding that follows the welcome and leaves one out must make the
// client report it paused (the bench client forgot the welcome's tracks on
// its first join, so a listener joining late counted no video as paused).
func TestForwardingPausesWelcomeTracks(t *testing.T) {
	if testing.Short() {
		t.Skip("media test skipped in -short mode")
	}
	n := lastNNode(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	room := roomname.New()
	// o only watches for both videos to be published, so that s, joining
	// next, learns of them from its welcome.
	o := join(t, n, room, client.Options{Name: "Observer"})
	startVideoOnly(ctx, t, n, room, 1)
	startVideoOnly(ctx, t, n, room, 2)
	deadline := time.After(30 * time.Second)
	for published := 0; published < 2; {
		select {
		case m, ok := <-o.Events():
			if !ok {
				t.Fatalf("observer session ended: %v", o.Err())
			}
			if m.Type == wire.TypeTrackPublished && m.Track.Kind == wire.KindVideo {
				published++
			}
		case <-deadline:
			t.Fatalf("timed out waiting for two videos (%d published)", published)
		}
	}

	s := join(t, n, room, client.Options{Name: "Late"})
	var videos []string
	for _, tr := range s.Welcome.Tracks {
		if tr.Kind == wire.KindVideo {
			videos = append(videos, tr.ID)
		}
	}
	if len(videos) != 2 {
		t.Fatalf("welcome lists videos %v, want both", videos)
	}
	deadline = time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-s.Events():
			if !ok {
				t.Fatalf("session ended: %v", s.Err())
			}
			if m.Type == wire.TypeTrackPublished && m.Track.Kind == wire.KindVideo {
				t.Fatalf("track-published for %s after a welcome that listed it", m.Track.ID)
			}
			if m.Type != wire.TypeForwarding || m.All || len(m.Video) != 1 {
				continue
			}
			fwd := m.Video[0]
			if !slices.Contains(videos, fwd) {
				t.Fatalf("forwarding lists %s, not a video of the welcome %v", fwd, videos)
			}
			paused := videos[0]
			if paused == fwd {
				paused = videos[1]
			}
			if !s.Paused(paused) {
				t.Fatalf("client.Paused(%s) false: the welcome listed it and the forwarding after it (%v) did not", paused, m.Video)
			}
			if s.Paused(fwd) {
				t.Fatalf("client.Paused(%s) true, the forwarding listed it", fwd)
			}
			if got := s.PausedVideos(); !slices.Equal(got, []string{paused}) {
				t.Fatalf("PausedVideos %v, want [%s]", got, paused)
			}
			return
		case <-deadline:
			t.Fatal("timed out waiting for a forwarding that lists one of the two videos")
		}
	}
}

// lastNNode is a node whose bridge runs with last-N at 1.
func lastNNode(t *testing.T) *node {
	t.Helper()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(bridge.Config{UDPConn: udp, PublicIPs: []string{"127.0.0.1"}, IncludeLoopback: true, LastN: 1, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithCancel(context.Background())
	bdone := make(chan struct{})
	go func() { defer close(bdone); br.Run(bctx) }()
	t.Cleanup(func() { bcancel(); <-bdone }) // after the node's own cleanup
	return startNode(t, func(c *signaling.Config) { c.Bridge = br })
}
