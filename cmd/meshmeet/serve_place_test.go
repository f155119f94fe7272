package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// startRegionCluster runs one serve node per region in this process (raft
// and memberlist on loopback, the relay over QUIC) and returns their base
// URLs, which are also their gossiped public URLs (--public-url default).
func startRegionCluster(t *testing.T, regions []string, extra ...[]string) []string {
	t.Helper()
	specs := make([]nodeSpec, len(regions))
	for i, r := range regions {
		specs[i] = nodeSpec{name: r + "-1", region: r}
		if i < len(extra) {
			specs[i].extra = extra[i]
		}
	}
	nodes := startServeNodes(t, "local", specs)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = "http://" + n.http
	}
	// Gossip has converged when every node lists every region's probe.
	for _, u := range urls {
		waitFor(t, "every region listed by "+u, func() bool {
			return len(regionsOf(u)) == len(regions)
		})
	}
	return urls
}

// regionsOf returns GET /regions of the node at base, nil on any error.
func regionsOf(base string) map[string]string {
	resp, err := http.Get(base + "/regions")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Regions []struct{ Region, Probe string } `json:"regions"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	out := map[string]string{}
	for _, r := range body.Regions {
		out[r.Region] = r.Probe
	}
	return out
}

// TestRedirectToNearestRegion: three nodes in three regions. A
// participant entering through the eu node whose measured round trips say
// us is nearest is redirected to the us node, joins the meeting there,
// and exchanges intact audio with a participant who stayed on eu (the
// meeting spans the two bridges over the relay). GET /regions lists one
// probe per region, and the bench client times them.
func TestRedirectToNearestRegion(t *testing.T) {
	if testing.Short() {
		t.Skip("three-node cluster with media; skipped in -short mode")
	}
	regions := []string{"eu", "us", "ap"}
	urls := startRegionCluster(t, regions)
	for i, r := range regions {
		if got := regionsOf(urls[0])[r]; got != urls[i]+"/probe" {
			t.Fatalf("GET /regions lists %q for %s, want %q", got, r, urls[i]+"/probe")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rtts, err := client.MeasureRTTs(ctx, urls[0])
	if err != nil || len(rtts) != 3 {
		t.Fatalf("MeasureRTTs = %v, %v; want the three regions", rtts, err)
	}

	const room = "PlacementRoomAcrossRegions"
	join := func(name string, tag uint32, got *audioLog, rtts []wire.RegionRTT, redirects *[]string) *client.Client {
		t.Helper()
		audio, err := client.NewAudio("a", fmt.Sprintf("s%d", tag))
		if err != nil {
			t.Fatal(err)
		}
		opts := client.Options{Name: name, Tracks: []webrtc.TrackLocal{audio}, OnTrack: got.onTrack, RTTs: rtts,
			OnRedirect: func(u string) { *redirects = append(*redirects, u) }}
		for {
			*redirects = nil
			c, err := client.Join(ctx, urls[0], room, opts)
			if err == nil {
				t.Cleanup(c.Close)
				src := &client.Synth{Sender: tag, Ext: c.Ext}
				go src.RunTalk(ctx, audio, client.AudioOptions{TalkBytes: 80, SilenceBytes: 80, Talk: 1})
				return c
			}
			if ctx.Err() != nil {
				t.Fatalf("join of %s: %v", name, err)
			}
			time.Sleep(200 * time.Millisecond) // the directory may still elect
		}
	}
	aliceGot, bobGot := &audioLog{got: map[uint32][2]int{}}, &audioLog{got: map[uint32][2]int{}}
	var aliceRedirects, bobRedirects []string
	alice := join("Alice", 1, aliceGot, nil, &aliceRedirects)
	if alice.Node() != urls[0] || len(aliceRedirects) != 0 {
		t.Fatalf("Alice, without round trips, on %s after redirects %v; want the eu node she reached", alice.Node(), aliceRedirects)
	}
	bob := join("Bob", 2, bobGot, []wire.RegionRTT{{Region: "eu", MS: 95}, {Region: "us", MS: 12}, {Region: "ap", MS: 180}}, &bobRedirects)
	if bob.Node() != urls[1] || len(bobRedirects) != 1 || bobRedirects[0] != urls[1] {
		t.Fatalf("Bob, nearest to us, on %s after redirects %v; want the us node %s", bob.Node(), bobRedirects, urls[1])
	}
	newWatcher(bob).wait(t, "Bob on the us node sees Alice", func(m *wire.Message) bool {
		return joined(m, alice.Welcome.Participant, "Alice")
	})
	for _, c := range []struct {
		who  string
		log  *audioLog
		from uint32
	}{{"Alice", aliceGot, 2}, {"Bob", bobGot, 1}} {
		waitFor(t, c.who+" receives intact audio from the other region's node", func() bool {
			n := c.log.count(c.from)
			return n[0] >= 20 && n[1] == n[0]
		})
	}
}

func TestPublicURLAndRegionPinFlags(t *testing.T) {
	cfg := &Config{}
	if u, err := ownPublicURL(cfg, "203.0.113.7", "7880"); err != nil || u != "http://203.0.113.7:7880" {
		t.Fatalf("default public URL %q, %v", u, err)
	}
	for in, want := range map[string]string{
		"https://eu-1.meet.example.org/": "https://eu-1.meet.example.org",
		"http://[2001:db8::1]:7880":      "http://[2001:db8::1]:7880",
	} {
		cfg.Mesh.PublicURL = in
		if u, err := ownPublicURL(cfg, "", ""); err != nil || u != want {
			t.Errorf("--public-url %s: %q, %v", in, u, err)
		}
	}
	for _, bad := range []string{"eu-1.example.org", "ftp://x", "https://u:p@x", "https://x/?a=1", "https://x/#f", "https://" + strings.Repeat("a", 60) + ".org"} {
		cfg.Mesh.PublicURL = bad
		if _, err := ownPublicURL(cfg, "", ""); err == nil {
			t.Errorf("--public-url %q accepted", bad)
		}
	}
	if got, err := regionPin([]string{"eu-west", " eu-central "}); err != nil || len(got) != 2 || got[1] != "eu-central" {
		t.Fatalf("regionPin: %v, %v", got, err)
	}
	for _, bad := range [][]string{{"eu west"}, {strings.Repeat("r", 65)}, strings.Split(strings.Repeat("r,", 17), ",")} {
		if _, err := regionPin(bad); err == nil {
			t.Errorf("--region-pin %q accepted", bad)
		}
	}
}

// TestPrintStatusByRegion: cluster status lists nodes region by region,
// with each node's stress and each region's totals.
func TestPrintStatusByRegion(t *testing.T) {
	var b strings.Builder
	err := printStatus(&b, mesh.Status{Node: "eu-1", Leader: "eu-1", Voters: []string{"eu-1", "us-1"}, Rooms: 3, Members: []mesh.MemberStatus{
		{Name: "us-1", State: "alive", Region: "us", Participants: 10, Capacity: 100, CPU: 0.5, BitrateBps: 3e6},
		{Name: "eu-2", State: "alive", Region: "eu", Participants: 80, Capacity: 100, CPU: 1.5, BitrateBps: 30e6, Draining: true},
		{Name: "eu-1", State: "alive", Region: "eu", Participants: 20, Capacity: 100, CPU: 0.7, BitrateBps: 5e6},
		{Name: "ap-1", State: "dead", Region: "ap"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	t.Log("\n" + out)
	var order []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (strings.HasSuffix(f[0], "-1") || strings.HasSuffix(f[0], "-2") || f[1] == "total") {
			order = append(order, f[0]+" "+f[1])
		}
	}
	want := []string{"ap-1 ap", "ap total", "eu-1 eu", "eu-2 eu", "eu total", "us-1 us", "us total"}
	if strings.Join(order, ",") != strings.Join(want, ",") {
		t.Fatalf("rows %v, want %v", order, want)
	}
	for _, want := range []string{"STRESS", "0.80", "2/2 live", "max 0.80", "35.0 Mb/s", "1 draining", "0/1 live"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q", want)
		}
	}
	// Scripts count members by their " alive " state cell.
	if n := strings.Count(out, " alive "); n != 3 {
		t.Errorf("%d \" alive \" in the status, want one per live member (3)", n)
	}
}

func TestClusterURLFlag(t *testing.T) {
	got, err := originHosts([]string{"https://meet.example.org", " http://127.0.0.1:7880/ "})
	if err != nil || len(got) != 2 || got[0] != "meet.example.org" || got[1] != "127.0.0.1:7880" {
		t.Fatalf("originHosts = %v, %v", got, err)
	}
	for _, bad := range []string{"meet.example.org", "ftp://x", "https://u@x"} {
		if _, err := originHosts([]string{bad}); err == nil {
			t.Errorf("--cluster-url %q accepted", bad)
		}
	}
}
