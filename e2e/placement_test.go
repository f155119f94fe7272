package e2e

import (
	"context"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// TestBrowserPlacement: a page entering through a node of the wrong
// region ends on its own region's node and sees the others.
//
// Three serve nodes (eu, us, ap) on loopback. The eu and ap nodes' public
// URLs (--public-url, what gossip and GET /regions give out) go through
// TCP proxies that add 150 and 250 ms of round trip, so a page that times
// the regions' probes finds us nearest, as a client in America would. One
// page enters through the eu node's public URL and one through the ap
// node's: each measures, joins, is redirected to the us node with no user
// action, and its media goes to the us node's --rtc-port. A pion
// participant that joins the eu node directly without measuring stays
// there: the pages see it in their roster across the relay, and see each
// other's video.
func TestBrowserPlacement(t *testing.T) {
	if !inNamespace(t, "TestBrowserPlacement") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)

	regions := []string{"eu", "us", "ap"}
	delay := map[string]time.Duration{"eu": 150 * time.Millisecond, "ap": 250 * time.Millisecond}
	// A delayed node's proxy listens first: its address is the node's
	// public URL.
	proxies := map[string]net.Listener{}
	for r := range delay {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		proxies[r] = ln
	}
	public := make([]string, len(regions))
	specs := regionNodes(regions...)
	for i, region := range regions {
		if ln := proxies[region]; ln != nil {
			public[i] = "http://" + ln.Addr().String()
			specs[i].extra = []string{"--public-url", public[i]}
		}
		specs[i].started = func(n *server) {
			if public[i] == "" {
				public[i] = n.URL
			} else {
				go delayProxy(proxies[region], strings.TrimPrefix(n.URL, "http://"), delay[region]/2)
			}
		}
	}
	nodes, _ := startCluster(t, bin, specs)
	eu, us := nodes[0], nodes[1]

	room := roomname.New()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Dave joins the eu node directly, with no round trips: the region
	// of the node reached counts, and he stays there.
	var dave *client.Client
	for dave == nil {
		c, err := client.Join(ctx, eu.URL, room, client.Options{Name: "Dave"})
		switch {
		case err == nil:
			dave = c
			t.Cleanup(c.Close)
		case ctx.Err() != nil:
			t.Fatalf("Dave's join: %v", err)
		default:
			time.Sleep(300 * time.Millisecond) // gossip and the directory settle
		}
	}
	if dave.Node() != eu.URL {
		t.Fatalf("Dave, without round trips, was moved to %s", dave.Node())
	}

	names := []string{"Eve", "Ada"}
	entry := []string{public[0], public[2]} // the eu and ap nodes, through their slow public URLs
	pages := make([]*browser, len(names))
	for i, name := range names {
		pages[i] = newBrowser(t, chromium, strings.ToLower(name), true)
		pages[i].navigate(t, entry[i]+"/"+url.PathEscape(room)+"?prejoin=0#name="+name)
	}
	for i, b := range pages {
		waitFor(t, b, "joined", 90*time.Second, `!!(window.meshmeet && window.meshmeet.joined)`,
			func(j bool) bool { return j })
		node := waitFor(t, b, "on the us node", 30*time.Second, `window.meshmeet.node`,
			func(n string) bool { return n != "" })
		if node != us.URL {
			t.Fatalf("%s entered through %s and ended on %s, want the us node %s", names[i], entry[i], node, us.URL)
		}
		rtts := waitFor(t, b, "round trips sent", 5*time.Second, `window.meshmeet.rtts`,
			func(r []map[string]any) bool { return len(r) == 3 })
		t.Logf("%s measured %v", names[i], rtts)
		others := []string{"Dave", names[1-i]}
		waitFor(t, b, "Dave (eu node) and the other page in the list", 60*time.Second,
			`window.meshmeet.participants.map((p) => p.name)`,
			func(got []string) bool { return contains(got, others[0]) && contains(got, others[1]) })
	}
	for i, b := range pages {
		waitFor(t, b, "the other page's video decoded", 120*time.Second, perTrackExpr,
			func(s []int) bool { return countAtLeast(s, 1) >= 1 })
		ports := waitFor(t, b, "selected candidate pairs", 30*time.Second, remotePortsExpr,
			func(p []int) bool { return len(p) == 2 })
		for _, p := range ports {
			if p != us.RTCPort {
				t.Errorf("%s's media goes to port %d, want the us node's %d (ports %v)", names[i], p, us.RTCPort, ports)
			}
		}
	}
	for _, b := range pages {
		b.checkConsole(t)
	}
}

// delayProxy forwards every connection accepted on ln to target, holding
// each chunk oneWay in each direction (an emulated long path), until ln
// closes.
func delayProxy(ln net.Listener, target string, oneWay time.Duration) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer u.Close()
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); delayCopy(u, c, oneWay); u.(*net.TCPConn).CloseWrite() }()
			go func() { defer wg.Done(); delayCopy(c, u, oneWay); c.(*net.TCPConn).CloseWrite() }()
			wg.Wait()
		}()
	}
}

// delayCopy copies src to dst, each chunk written oneWay after it was
// read; chunks keep their order and do not wait for each other.
func delayCopy(dst io.Writer, src io.Reader, oneWay time.Duration) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(oneWay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			for range q {
			}
			return
		}
	}
}

// TestBrowserMovedMidMeeting: the redirect a draining node sends in the
// middle of a meeting moves a page to another node with no user action.
// Three nodes (us, and eu-a and eu-b in one region). Two pages open the
// meeting through eu-a and eu-b; placement puts the second on the bridge
// that holds the meeting (eu-a). `meshmeet cluster drain eu-a` then moves
// both: each page closes its socket, joins eu-b with its resume secret,
// sets up new PeerConnections and publishes again, and the two see and
// decode each other there, their media going to eu-b's --rtc-port.
func TestBrowserMovedMidMeeting(t *testing.T) {
	if !inNamespace(t, "TestBrowserMovedMidMeeting") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)

	nodes, secretFile := startCluster(t, bin, []nodeSpec{
		{name: "us", region: "us"}, {name: "eu-a", region: "eu"}, {name: "eu-b", region: "eu"},
	})
	euA, euB := nodes[1], nodes[2]

	room := roomname.New()
	pageNames := []string{"Ann", "Ben"}
	entry := []*server{euA, euB}
	pages := make([]*browser, 2)
	for i, name := range pageNames {
		pages[i] = newBrowser(t, chromium, strings.ToLower(name), true)
		pages[i].navigate(t, entry[i].URL+"/"+url.PathEscape(room)+"?prejoin=0#name="+name)
		waitFor(t, pages[i], "joined", 90*time.Second, `!!(window.meshmeet && window.meshmeet.joined)`,
			func(j bool) bool { return j })
	}
	for i, b := range pages {
		waitFor(t, b, "the other page in the list", 60*time.Second,
			`window.meshmeet.participants.map((p) => p.name)`,
			func(got []string) bool { return contains(got, pageNames[1-i]) })
		waitFor(t, b, "the other page's video decoded", 120*time.Second, perTrackExpr,
			func(s []int) bool { return countAtLeast(s, 1) >= 1 })
	}
	if node := waitFor(t, pages[1], "Ben's node", 5*time.Second, `window.meshmeet.node`, func(string) bool { return true }); node != euA.URL {
		t.Fatalf("Ben entered through eu-b while eu-a holds the meeting; placed on %q, want eu-a %s", node, euA.URL)
	}
	before := make([]string, 2)
	for i, b := range pages {
		before[i] = waitFor(t, b, "participant ID", 5*time.Second, `window.meshmeet.participant`, func(s string) bool { return s != "" })
	}

	out, err := exec.Command(bin, "cluster", "drain", "--url", euA.URL, "--cluster-secret-file", secretFile, "eu-a").CombinedOutput()
	if err != nil {
		t.Fatalf("cluster drain eu-a: %v\n%s", err, out)
	}
	t.Logf("cluster drain eu-a: %s", strings.TrimSpace(string(out)))

	for i, b := range pages {
		waitFor(t, b, "moved to eu-b", 90*time.Second, `window.meshmeet.node`,
			func(n string) bool { return n == euB.URL })
		waitFor(t, b, "joined again", 60*time.Second, `!!window.meshmeet.joined && !!window.meshmeet.sub`,
			func(j bool) bool { return j })
		waitFor(t, b, "the other page still in the list", 60*time.Second,
			`window.meshmeet.participants.map((p) => p.name)`,
			func(got []string) bool { return contains(got, pageNames[1-i]) })
		waitFor(t, b, "the other page's video decoded on eu-b", 120*time.Second, perTrackExpr,
			func(s []int) bool { return countAtLeast(s, 1) >= 1 })
		ports := waitFor(t, b, "selected candidate pairs", 30*time.Second, remotePortsExpr,
			func(p []int) bool { return len(p) == 2 && p[0] == euB.RTCPort && p[1] == euB.RTCPort })
		after := waitFor(t, b, "participant ID", 5*time.Second, `window.meshmeet.participant`, func(s string) bool { return s != "" })
		t.Logf("%s: moved to eu-b (media ports %v), participant %s before, %s after", pageNames[i], ports, before[i], after)
	}
	for _, b := range pages {
		b.checkConsole(t)
	}
}
