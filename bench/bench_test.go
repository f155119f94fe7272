package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// The end-to-end tests run the real binary as local nodes, as `meshmeet
// bench --local N` does. It is built once, on first use.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func meshmeetBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end bench run skipped in -short mode")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "meshmeet-bench-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "meshmeet")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/meshmeet").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// short scales a preset down to a few seconds and a few participants, so
// that CI on two shared cores runs every preset in well under a minute.
func short(t *testing.T, name string, mut func(*Scenario)) Scenario {
	t.Helper()
	s, err := Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	s.Duration = 3 * time.Second
	s.Settle = time.Second
	if mut != nil {
		mut(&s)
	}
	return s
}

// TestPresets runs each preset briefly on one local node and checks the
// report: everyone joined, media flowed with loss under 1 %, every shown
// video rendered, the figures hang together.
func TestPresets(t *testing.T) {
	bin := meshmeetBinary(t)
	for _, tc := range []struct {
		name, preset string
		mut          func(*Scenario)
		video        bool
	}{
		{"audio-fanout", "audio-fanout", func(s *Scenario) { s.Rooms, s.Subscribers = 1, 4 }, false},
		{"meeting", "meeting", func(s *Scenario) { s.Rooms, s.Publishers = 1, 3 }, true},
		{"livestream", "livestream", func(s *Scenario) { s.Subscribers = 3 }, true},
		{"join-storm", "join-storm", func(s *Scenario) { s.Rooms, s.Subscribers = 2, 3 }, true},
		// TURN-only ICE: the media crosses the node's TURN server (its
		// UDP data plane) to the bridge, or nothing arrives.
		{"meeting turn-only", "meeting", func(s *Scenario) { s.Rooms, s.Publishers, s.TURNOnly = 1, 2, true }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scn := short(t, tc.preset, tc.mut)
			var progress bytes.Buffer
			rep, err := Run(context.Background(), Params{
				Scenario:    scn,
				Local:       1,
				Binary:      bin,
				MaxLoss:     1,
				MaxP95Delay: 2 * time.Second, // generous: a sanity bound, not a timing test
				Progress:    &progress,
			})
			if errors.Is(err, ErrGuardsFailed) && kernelDropsExplain(rep) {
				// Loopback loss on a busy CI machine: the kernel turned the
				// packets away at a full socket buffer (the report says so),
				// not the bridge. Everything else is still checked.
				t.Logf("guards failed, all explained by kernel socket drops: %v", rep.Guards.Failed)
				err = nil
			}
			if err != nil {
				if rep != nil {
					var b strings.Builder
					rep.WriteTable(&b)
					t.Fatalf("%v\n%s", err, b.String())
				}
				t.Fatal(err)
			}
			checkReport(t, rep, scn, tc.video)
			if !strings.Contains(progress.String(), "joined") {
				t.Errorf("no progress line: %q", progress.String())
			}
		})
	}
}

// kernelDropsExplain reports whether every failed guard is audio loss (no
// repair by NACK) of no more packets than the kernel dropped for full UDP
// receive buffers on this machine in the window.
func kernelDropsExplain(rep *Report) bool {
	if rep == nil || len(rep.Guards.Failed) == 0 {
		return false
	}
	for _, f := range rep.Guards.Failed {
		if !strings.HasPrefix(f, "audio loss") {
			return false
		}
	}
	lost := int64(rep.AudioLoss.Expected - rep.AudioLoss.Received)
	return rep.Generator.UDPRcvbufErrors >= lost && rep.AudioLoss.Percent < 10
}

func checkReport(t *testing.T, rep *Report, scn Scenario, video bool) {
	t.Helper()
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("report:\n%s", table.String())
		}
	}()
	want := int64(scn.Rooms * scn.perRoom())
	if rep.Participants.Joined != want || rep.Participants.Failed != 0 {
		t.Errorf("joined %d failed %d, want %d joined", rep.Participants.Joined, rep.Participants.Failed, want)
	}
	if rep.Errors != 0 {
		t.Errorf("%d errors: %v", rep.Errors, rep.ErrorSample)
	}
	if rep.Join.Count != uint64(want) {
		t.Errorf("join times of %d participants, want %d", rep.Join.Count, want)
	}
	// Everyone hears every other audio publisher.
	pubs := scn.Publishers + scn.AudioPublishers
	audioStreams := scn.Rooms * (pubs*(pubs-1) + scn.Subscribers*pubs)
	if int(rep.FirstAudio.Count) != audioStreams || rep.AudioJitter.Count != uint64(audioStreams) {
		t.Errorf("%d audio streams started (%d with jitter), want %d", rep.FirstAudio.Count, rep.AudioJitter.Count, audioStreams)
	}
	// 20 ms packets: 50 per second per stream. A sender starved of CPU
	// for over 200 ms skips ahead rather than burst, so a busy machine
	// sends fewer: this only checks that audio flowed all along.
	if min := float64(audioStreams) * 50 * rep.WindowSeconds * 0.5; float64(rep.AudioLoss.Expected) < min {
		t.Errorf("audio: %d packets expected, want at least %.0f", rep.AudioLoss.Expected, min)
	}
	if rep.AudioDelay.Count == 0 || rep.AudioDelay.P50 <= 0 || rep.AudioDelay.P50 > rep.AudioDelay.P99 {
		t.Errorf("audio delay %+v", rep.AudioDelay)
	}
	if video {
		if rep.FirstFrame.Count == 0 || rep.VideoDelay.Count == 0 || rep.VideoLoss.Expected == 0 {
			t.Errorf("no video: first frame %+v, delay %+v", rep.FirstFrame, rep.VideoDelay)
		}
		// Freezes are gaps in time, which a busy CI machine can cause;
		// a video that never showed a frame is a fault.
		if rep.Freezes.NeverRendered != 0 || rep.Freezes.Streams == 0 {
			t.Errorf("freezes: %+v", rep.Freezes)
		}
		// The layout picks the layer: one tile → 720p, a grid → 360p.
		wantLayer := map[int]string{1: "f", 4: "h"}[scn.Layout]
		for _, l := range rep.Layers {
			if l.RID == wantLayer && l.Streams == 0 {
				t.Errorf("layout %d: no subscription on layer %s: %+v", scn.Layout, wantLayer, rep.Layers)
			}
		}
	}
	if rep.ForwardedPPS <= 0 || rep.CPUPerPacketUS == nil || *rep.CPUPerPacketUS <= 0 || rep.MemPerParticipantKB == nil {
		t.Errorf("cost: pps %v cpu/packet %v mem/participant %v", rep.ForwardedPPS, rep.CPUPerPacketUS, rep.MemPerParticipantKB)
	}
	if len(rep.Nodes) != 1 || rep.Nodes[0].CPUSeconds <= 0 || rep.Nodes[0].RSSEndMB <= 0 {
		t.Errorf("nodes: %+v", rep.Nodes)
	} else if bf := rep.Nodes[0].BridgeForwarded; bf == nil || *bf <= 0 {
		// The node serves metrics (--metrics-addr): its bridge counted
		// what the subscribers received.
		t.Errorf("no bridge counters from the node's metrics: %+v", rep.Nodes[0])
	}
	if rep.Generator.CPUSeconds <= 0 || rep.Generator.CoresUsable < 1 {
		t.Errorf("generator: %+v", rep.Generator)
	}
	if len(rep.Timeline) < 3 {
		t.Errorf("timeline of %d samples", len(rep.Timeline))
	}
	// The JSON report carries the same figures.
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"join_ms", "first_frame_ms", "audio_delay_ms", "video_loss", "freezes", "layers", "forwarded_pps", "cpu_per_packet_us", "generator", "timeline"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	var html bytes.Buffer
	if err := rep.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	h := html.String()
	if !strings.Contains(h, "<svg") || strings.Contains(h, "src=\"http") || strings.Contains(h, "href=\"http") {
		t.Errorf("HTML report without plots or with external assets")
	}
}

// TestDroppedStream makes one publisher drop all its packets for 1.5 s in
// the middle of the window: the report must show the loss, a freeze on
// every subscription to its video, and fail the loss guard.
func TestDroppedStream(t *testing.T) {
	bin := meshmeetBinary(t)
	scn := short(t, "meeting", func(s *Scenario) {
		s.Rooms, s.Publishers, s.Duration = 1, 3, 4*time.Second
	})
	rep, err := Run(context.Background(), Params{
		Scenario: scn,
		Local:    1,
		Binary:   bin,
		MaxLoss:  1,
		Fault:    &Fault{Publisher: 0, After: time.Second, For: 1500 * time.Millisecond, Audio: true},
	})
	if !errors.Is(err, ErrGuardsFailed) {
		t.Fatalf("err = %v, want ErrGuardsFailed", err)
	}
	var table strings.Builder
	rep.WriteTable(&table)
	t.Logf("report:\n%s", table.String())
	// Two of the three publishers' streams reach two subscribers each; one
	// publisher's are dropped for 1.5 s of 4 s: its streams lose ~37 %, so
	// all streams together lose about a third of that.
	for kind, l := range map[string]Loss{"audio": rep.AudioLoss, "video": rep.VideoLoss} {
		if l.Percent < 5 || l.Percent > 40 {
			t.Errorf("%s loss %.2f%%, want about 12%%", kind, l.Percent)
		}
	}
	f := rep.Freezes
	if f.Frozen < 2 || f.Count < 2 || f.TotalSeconds < 2*1.4 {
		t.Errorf("freezes %+v: want the 2 subscriptions to the dropped video frozen ~1.5 s each", f)
	}
	if len(rep.Guards.Failed) == 0 {
		t.Error("no guard failed")
	}
}

// TestGlobalCrossNode runs the global preset as users meet it: three
// nodes in three regions, each participant entering through its own
// region's node, one room spanning the three bridges over the relay. Every
// publisher's video reaches every other participant, and the emulated
// inter-region delay (on the relay path between the nodes) shows up in the
// end-to-end delay of cross-region paths while same-region paths stay
// without it.
func TestGlobalCrossNode(t *testing.T) {
	bin := meshmeetBinary(t)
	scn := short(t, "global", func(s *Scenario) {
		s.Rooms, s.Publishers, s.Subscribers, s.CrossNode = 1, 3, 3, true
	})
	rep, err := Run(context.Background(), Params{Scenario: scn, Local: 3, Binary: bin, MaxLoss: 1})
	var table strings.Builder
	if rep != nil {
		rep.WriteTable(&table)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, table.String())
	}
	t.Logf("report:\n%s", table.String())
	if rep.Participants.Failed != 0 || rep.Errors != 0 {
		t.Errorf("participants %+v, errors %d %v", rep.Participants, rep.Errors, rep.ErrorSample)
	}
	// 3 publishers, each shown by the 2 other publishers and 3 subscribers.
	if rep.Freezes.NeverRendered != 0 || rep.FirstFrame.Count != 15 {
		t.Errorf("freezes %+v, first frames %d, want 15", rep.Freezes, rep.FirstFrame.Count)
	}
	// Each participant is on its own region's node: every node serves two.
	for _, n := range rep.Nodes {
		if n.Participants != 2 {
			t.Errorf("node %s (%s): %d participants, want 2 (one publisher, one subscriber of its region)", n.Name, n.Region, n.Participants)
		}
	}
	want := map[string]float64{"eu-us": 40, "us-ap": 60, "eu-ap": 110}
	same := 0
	for path, st := range rep.DelayByPath {
		hops := strings.Split(path, "→")
		from, to := hops[0], hops[len(hops)-1]
		if from == to {
			same++
			if st.P50 >= 40 {
				t.Errorf("%s (same region): p50 %.1f ms, want under the smallest link (40 ms)", path, st.P50)
			}
			continue
		}
		min, ok := want[from+"-"+to]
		if !ok {
			min = want[to+"-"+from]
		}
		if st.P50 < min*(1-0.016) { // histogram quantiles: within 1.6 %
			t.Errorf("%s: p50 %.1f ms, want ≥ %v ms (the emulated link)", path, st.P50, min)
		}
	}
	if same != 3 {
		t.Errorf("%d same-region paths, want 3", same)
	}
}

// TestChurn replaces participants during the window: the replacements
// join and receive, and leaving is not counted as loss or an error.
func TestChurn(t *testing.T) {
	bin := meshmeetBinary(t)
	scn := short(t, "meeting", func(s *Scenario) {
		s.Rooms, s.Publishers, s.Subscribers, s.Duration, s.Churn = 1, 2, 2, 5*time.Second, 30
	})
	rep, err := Run(context.Background(), Params{Scenario: scn, Local: 1, Binary: bin, MaxLoss: 1})
	var table strings.Builder
	if rep != nil {
		rep.WriteTable(&table)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, table.String())
	}
	c := rep.Participants
	if c.Churned < 1 || c.Joined != int64(c.Planned)+c.Churned || c.Failed != 0 || rep.Errors != 0 {
		t.Errorf("participants %+v, errors %d %v\n%s", c, rep.Errors, rep.ErrorSample, table.String())
	}
	// Every replacement saw its first frame of each publisher it shows.
	if rep.FirstFrame.Count < uint64(scn.Publishers*(scn.Publishers-1)+scn.Subscribers*scn.Publishers) {
		t.Errorf("first frames: %+v\n%s", rep.FirstFrame, table.String())
	}
}

// TestGlobalOneBridge runs the global preset's participants (three regions,
// emulated links) against rooms on one node, as meshmeet serves them until
// the cascade: each path's delay includes its links.
func TestGlobalOneBridge(t *testing.T) {
	bin := meshmeetBinary(t)
	scn := short(t, "global", func(s *Scenario) {
		s.Rooms, s.Publishers, s.Subscribers, s.CrossNode = 1, 3, 0, false
	})
	rep, err := Run(context.Background(), Params{Scenario: scn, Local: 1, Binary: bin, MaxLoss: 1})
	var table strings.Builder
	if rep != nil {
		rep.WriteTable(&table)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, table.String())
	}
	t.Logf("report:\n%s", table.String())
	// The node is in eu; eu-us is 40 ms, eu-ap 110 ms one way. Quantiles
	// come from the histogram's buckets, within 1.6 % of the true value
	// (CI once saw p50 149.504 for a path of 150 ms).
	for path, min := range map[string]float64{"us→bench-1→ap": 150, "ap→bench-1→us": 150, "eu→bench-1→us": 40, "ap→bench-1→eu": 110} {
		s, ok := rep.DelayByPath[path]
		if !ok || s.P50 < min*(1-0.016) {
			t.Errorf("%s: %+v, want p50 ≥ %v ms", path, s, min)
		}
	}
	if rep.Freezes.NeverRendered != 0 || rep.FirstFrame.Count != 6 {
		t.Errorf("freezes %+v, first frames %d", rep.Freezes, rep.FirstFrame.Count)
	}
}

// TestManyParticipantsOneNode joins faster than a node lets one address
// join (5 a second after a burst of 30) and more participants than it
// admits from one address (100): every participant dials from a loopback
// address of its own, as the participants of a real meeting come from
// many, so all of them join. From one address 66 of the 105 were refused
// "busy: too many joins from this address" (and the large preset's 1,000
// over 5 nodes could not have passed 100 per node).
func TestManyParticipantsOneNode(t *testing.T) {
	bin := meshmeetBinary(t)
	scn := short(t, "audio-fanout", func(s *Scenario) {
		s.Rooms, s.AudioPublishers, s.Subscribers, s.JoinRate = 1, 1, 104, 50
		s.Duration, s.Settle = time.Second, time.Second
	})
	rep, err := Run(context.Background(), Params{Scenario: scn, Local: 1, Binary: bin,
		NodeArgs: []string{"--max-room-participants", "200"}})
	var table strings.Builder
	if rep != nil {
		rep.WriteTable(&table)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, table.String())
	}
	if c := rep.Participants; c.Joined != 105 || c.Failed != 0 {
		t.Errorf("participants %+v, errors %v\n%s", c, rep.ErrorSample, table.String())
	}
}

func TestSourceAddr(t *testing.T) {
	for _, tc := range []struct {
		base string
		tag  uint32
		want string
	}{
		{"http://127.0.0.1:7880", 1, "127.1.0.2"},
		{"http://127.0.0.1:7880", 300, "127.1.1.45"},
		{"http://127.0.0.1:7880", 65534, "127.1.0.1"},
		{"http://[::1]:7880", 1, "invalid IP"},
		{"http://10.0.0.5:7880", 1, "invalid IP"},
		{"http://meet.example.org", 1, "invalid IP"},
	} {
		if got := sourceAddr(tc.base, tc.tag).String(); got != tc.want {
			t.Errorf("sourceAddr(%s, %d) = %s, want %s", tc.base, tc.tag, got, tc.want)
		}
	}
}

// TestWelcomeOverFrameLimit joins a meeting whose welcome (every
// participant already in it) is larger than wire.MaxFrameBytes, the limit
// on what a client sends: the bench client must read it. The first
// large-preset run with 1,000 participants lost its last 215 joins to
// "message too big: read limited at 65537 bytes" past ~785 participants.
// Here 200 participants with 64-character names, joined over signaling
// only (no media), make the welcome about 90 KB.
func TestWelcomeOverFrameLimit(t *testing.T) {
	bin := meshmeetBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lc, err := startLocal(ctx, bin, 1, []string{"local"}, []string{"--max-room-participants", "300"}, false, nil, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer lc.stop()
	base := lc.nodes[0].URL
	const room, others = "bench-welcome-size", 200
	name := strings.Repeat("<", wire.MaxDisplayNameRunes) // 6 bytes each in JSON
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range others {
		src := netip.AddrFrom4([4]byte{127, 2, byte(i >> 8), byte(i + 1)})
		d := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		ws, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/ws", &websocket.DialOptions{
			Subprotocols: []string{wire.Subprotocol},
			HTTPClient:   &http.Client{Transport: &http.Transport{DialContext: d.DialContext}},
		})
		if err != nil {
			t.Fatalf("participant %d: %v", i, err)
		}
		ws.SetReadLimit(-1)
		join, _ := json.Marshal(&wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: name})
		if err := ws.Write(ctx, websocket.MessageText, join); err != nil {
			t.Fatalf("participant %d: %v", i, err)
		}
		_, data, err := ws.Read(ctx)
		if err != nil || !bytes.Contains(data, []byte(`"welcome"`)) {
			t.Fatalf("participant %d: %v %.200s", i, err, data)
		}
		wg.Add(1)
		go func() { // read the room's news until the end
			defer wg.Done()
			defer ws.CloseNow()
			for {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
		}()
	}
	c, err := client.Join(ctx, base, room, client.Options{SourceAddr: netip.MustParseAddr("127.2.255.1")})
	if err != nil {
		t.Fatalf("join after %d others: %v", others, err)
	}
	defer c.Close()
	b, _ := json.Marshal(c.Welcome)
	if len(c.Welcome.Participants) != others || len(b) <= wire.MaxFrameBytes {
		t.Errorf("welcome lists %d participants in %d bytes; want %d in more than %d", len(c.Welcome.Participants), len(b), others, wire.MaxFrameBytes)
	}
}
