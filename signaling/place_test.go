package signaling_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/golang-jwt/jwt/v5"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/placement"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// cluster is two or more test nodes sharing one directory, each seeing
// the others through Config.Bridges as gossip would show them.
type cluster struct {
	dir *mesh.LocalDirectory
	mu  sync.Mutex
	bs  []placement.Bridge
}

func (cl *cluster) bridges() []placement.Bridge {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]placement.Bridge(nil), cl.bs...)
}

func (cl *cluster) set(bs ...placement.Bridge) {
	cl.mu.Lock()
	cl.bs = bs
	cl.mu.Unlock()
}

func (cl *cluster) node(t *testing.T, name, region string, pin ...string) *node {
	return startNode(t, func(c *signaling.Config) {
		c.NodeName, c.Region, c.Directory = name, region, cl.dir
		c.Bridges = cl.bridges
		c.RegionPin = pin
	})
}

func bridgeOf(name, region, url string) placement.Bridge {
	return placement.Bridge{Name: name, Region: region, PublicURL: url, Capacity: 100}
}

// TestPlacementRedirect: a client entering through the eu node whose
// round trips say us is nearer is redirected to the us node and joins
// there; without round trips the node it reached keeps it.
func TestPlacementRedirect(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu := cl.node(t, "eu1", "eu")
	us := cl.node(t, "us1", "us")
	cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", us.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var redirects []string
	c, err := client.Join(ctx, eu.URL, "PlacementRoomOne", client.Options{
		Name:       "Ada",
		RTTs:       []wire.RegionRTT{{Region: "eu", MS: 90}, {Region: "us", MS: 8}},
		OnRedirect: func(u string) { redirects = append(redirects, u) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Node() != us.URL || len(redirects) != 1 || redirects[0] != us.URL {
		t.Fatalf("client on %s after redirects %v; want on the us node %s", c.Node(), redirects, us.URL)
	}
	r, ok, _ := cl.dir.Lookup(ctx, mesh.NewRoomKey(testRoomKey, "PlacementRoomOne"))
	if !ok || r.Bridges["us1"] != 1 || r.Bridges["eu1"] != 0 {
		t.Fatalf("directory holds %+v, want the participant on us1 only", r.Bridges)
	}
	if _, away, _ := eu.Srv.Placed(); away != 1 {
		t.Fatalf("eu node redirected %d joins, want 1", away)
	}

	// No round trips: the reached node's region counts.
	c2, err := client.Join(ctx, eu.URL, "PlacementRoomTwo", client.Options{OnRedirect: func(u string) { t.Errorf("redirected to %s", u) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.Node() != eu.URL {
		t.Fatalf("client without RTTs on %s, want %s", c2.Node(), eu.URL)
	}

	// The meeting on us1 draws a late joiner of its region through eu.
	c3, err := client.Join(ctx, eu.URL, "PlacementRoomOne", client.Options{RTTs: []wire.RegionRTT{{Region: "us", MS: 20}, {Region: "eu", MS: 70}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if c3.Node() != us.URL || len(c3.Welcome.Participants) != 1 {
		t.Fatalf("late joiner on %s seeing %d others; want us node seeing Ada", c3.Node(), len(c3.Welcome.Participants))
	}
}

// TestPlacementPinned: a node's --region-pin keeps its rooms in its
// regions whatever the client measured, and a pinned room whose regions
// are full is refused with a clear error instead of spilling.
func TestPlacementPinned(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu := cl.node(t, "eu1", "eu", "eu")
	us := cl.node(t, "us1", "us")
	cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", us.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nearUS := client.Options{RTTs: []wire.RegionRTT{{Region: "us", MS: 5}, {Region: "eu", MS: 90}}}

	c, err := client.Join(ctx, eu.URL, "PinnedRoom", nearUS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Node() != eu.URL {
		t.Fatalf("pinned join ended on %s, want the eu node", c.Node())
	}

	full := bridgeOf("eu1", "eu", eu.URL)
	full.Participants = 100
	cl.set(full, bridgeOf("us1", "us", us.URL))
	_, err = client.Join(ctx, eu.URL, "PinnedRoomFull", nearUS)
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != wire.CodeFull || we.Message == "" {
		t.Fatalf("join of a pinned room with its region full: %v; want a full error", err)
	}
	if _, _, refused := eu.Srv.Placed(); refused != 1 {
		t.Fatalf("refused %d, want 1", refused)
	}
}

// TestRedirectOnlyToMembers: a member gossiping a public URL a client
// must not be sent to (another scheme, credentials, a query) is never
// redirected to; the join stays on the node reached.
func TestRedirectOnlyToMembers(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu := cl.node(t, "eu1", "eu")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, bad := range []string{"javascript:alert(1)", "http://user:pw@evil.example", "https://evil.example/?x=1", "ftp://evil.example", "//evil.example"} {
		cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", bad))
		c, err := client.Join(ctx, eu.URL, "MembersOnly"+string(rune('A'+i)), client.Options{
			RTTs:       []wire.RegionRTT{{Region: "us", MS: 1}, {Region: "eu", MS: 99}},
			OnRedirect: func(u string) { t.Errorf("redirected to %q", u) },
		})
		if err != nil {
			t.Fatalf("%q: %v", bad, err)
		}
		if c.Node() != eu.URL {
			t.Fatalf("%q: client on %s", bad, c.Node())
		}
		c.Close()
	}
}

// TestRedirectedPageOrigin: a page served by one node opens its WebSocket
// to another node after a redirect; the upgrade accepts the cluster's
// origins and refuses others.
func TestRedirectedPageOrigin(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu := cl.node(t, "eu1", "eu")
	us := startNode(t, func(c *signaling.Config) {
		c.NodeName, c.Region, c.Directory = "us1", "us", cl.dir
		c.Bridges = cl.bridges
		c.ClusterOrigins = []string{"meet.example.org"}
	})
	cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", us.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(origin string) error {
		h := http.Header{}
		h.Set("Origin", origin)
		ws, _, err := websocket.Dial(ctx, "ws"+us.URL[len("http"):]+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}, HTTPHeader: h})
		if err == nil {
			ws.CloseNow()
		}
		return err
	}
	if err := dial(eu.URL); err != nil {
		t.Fatalf("upgrade from the eu node's page refused: %v", err)
	}
	if err := dial("https://meet.example.org"); err != nil {
		t.Fatalf("upgrade from a page under the cluster's shared name refused: %v", err)
	}
	if err := dial("http://evil.example"); err == nil {
		t.Fatal("upgrade from another origin accepted")
	}
}

// TestPlacementTokenPin: a token's regions claim pins its holder's join
// like --region-pin: it stays in the token's region however near another
// region measures, while a join without the claim is placed by its
// round trips.
func TestPlacementTokenPin(t *testing.T) {
	a, err := signaling.NewAuthenticator(signaling.AuthConfig{HMACSecret: testJWTSecret})
	if err != nil {
		t.Fatal(err)
	}
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	withAuth := func(name, region string) *node {
		return startNode(t, func(c *signaling.Config) {
			c.NodeName, c.Region, c.Directory = name, region, cl.dir
			c.Bridges = cl.bridges
			c.Auth = a
		})
	}
	eu, us := withAuth("eu1", "eu"), withAuth("us1", "us")
	cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", us.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nearUS := []wire.RegionRTT{{Region: "us", MS: 5}, {Region: "eu", MS: 90}}

	pinned := sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("TokenPinnedRoom", func(c *signaling.Claims) { c.Regions = []string{"eu"} }))
	c, err := client.Join(ctx, eu.URL, "TokenPinnedRoom", client.Options{Token: pinned, RTTs: nearUS})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Node() != eu.URL {
		t.Fatalf("token pinned to eu ended on %s", c.Node())
	}
	free := sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("TokenFreeRoom", nil))
	c2, err := client.Join(ctx, eu.URL, "TokenFreeRoom", client.Options{Token: free, RTTs: nearUS})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if c2.Node() != us.URL {
		t.Fatalf("unpinned token ended on %s, want the us node", c2.Node())
	}
}

// TestPageCSPListsCluster: the page's connect-src lets it time the other
// nodes' probes and open their WebSockets, and nothing a gossiped URL
// could smuggle in.
func TestPageCSPListsCluster(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu := cl.node(t, "eu1", "eu")
	cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", "https://us-1.meet.example.org"),
		bridgeOf("x", "x", "https://evil.example;script-src"), bridgeOf("y", "y", "https://a.example/ x"))
	resp, err := http.Get(eu.URL + "/SomeRoomName")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"connect-src 'self' ", "https://us-1.meet.example.org", "wss://us-1.meet.example.org", "ws://" + eu.URL[len("http://"):], "script-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("page CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "evil") || strings.Contains(csp, "a.example") {
		t.Errorf("page CSP %q lists a malformed URL", csp)
	}
}

// BenchmarkJoinRedirect measures the join time a redirect adds: joins
// (WebSocket, join, welcome; no media) through the node placement keeps
// them on, against joins through the other region's node that redirects
// them. On loopback the difference is the redirect's own cost: one more
// WebSocket and join, and the placement decision; over a network add the
// round trips of a new connection to the target node.
func BenchmarkJoinRedirect(b *testing.B) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu := benchNode(b, cl, "eu1", "eu")
	us := benchNode(b, cl, "us1", "us")
	// No capacity: the static load here never reports the joins, which
	// would otherwise fill the bridges as placement counts them.
	cl.set(placement.Bridge{Name: "eu1", Region: "eu", PublicURL: eu.URL}, placement.Bridge{Name: "us1", Region: "us", PublicURL: us.URL})
	nearUS := []wire.RegionRTT{{Region: "us", MS: 5}, {Region: "eu", MS: 90}}
	for _, c := range []struct {
		name, via, want string
	}{{"direct", us.URL, us.URL}, {"redirected", eu.URL, us.URL}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			i := 0
			var joining time.Duration
			for b.Loop() {
				i++
				start := time.Now()
				cli, err := client.Join(ctx, c.via, fmt.Sprintf("BenchRoom%s%d", c.name, i), client.Options{RTTs: nearUS})
				joining += time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if cli.Node() != c.want {
					b.Fatalf("on %s", cli.Node())
				}
				cli.Leave(ctx)
			}
			// The join alone (dial to welcome), without the leave.
			b.ReportMetric(float64(joining.Microseconds())/float64(i), "join-µs")
		})
	}
}

// benchNode is startNode for a benchmark: a real bridge on loopback and
// signaling behind a real HTTP listener, placed by cl.
func benchNode(b *testing.B, cl *cluster, name, region string) *node {
	b.Helper()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	br, err := bridge.New(bridge.Config{UDPConn: udp, PublicIPs: []string{"127.0.0.1"}, IncludeLoopback: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := signaling.New(signaling.Config{
		NodeName: name, Region: region, RoomKey: testRoomKey, Directory: cl.dir, Bridge: br,
		Bridges: cl.bridges, SourceJoinRate: 1e6, SourceJoinBurst: 1e6, MaxPerSource: 1e6,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); br.Run(ctx) }()
	go func() { defer wg.Done(); srv.Run(ctx) }()
	hs := httptest.NewServer(srv)
	b.Cleanup(func() {
		cancel()
		hs.CloseClientConnections()
		hs.Close()
		wg.Wait()
		udp.Close()
	})
	for {
		resp, err := http.Get(hs.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &node{URL: hs.URL, Dir: cl.dir, Srv: srv, Br: br}
}

// TestNoRedirectFromHTTPSToHTTP: a page loaded over https cannot open an
// http URL, so placement does not consider the members whose public URL
// is http for it (a cluster behind a TLS load balancer without per-node
// https URLs keeps every join where it arrived).
func TestNoRedirectFromHTTPSToHTTP(t *testing.T) {
	cl := &cluster{dir: mesh.NewLocalDirectory()}
	eu := cl.node(t, "eu1", "eu")
	us := cl.node(t, "us1", "us")
	cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", us.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	join := func(origin string) wire.Type {
		h := http.Header{}
		h.Set("Origin", origin)
		ws, _, err := websocket.Dial(ctx, "ws"+eu.URL[len("http"):]+"/ws", &websocket.DialOptions{Subprotocols: []string{wire.Subprotocol}, HTTPHeader: h})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if err := wsjson.Write(ctx, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: "SecurePageRoom" + origin[:5],
			RTTs: []wire.RegionRTT{{Region: "us", MS: 3}, {Region: "eu", MS: 99}}}); err != nil {
			t.Fatal(err)
		}
		var m wire.Message
		if err := wsjson.Read(ctx, ws, &m); err != nil {
			t.Fatal(err)
		}
		return m.Type
	}
	if got := join(eu.URL); got != wire.TypeRedirect {
		t.Fatalf("an http page nearest to us got %s, want a redirect", got)
	}
	cl.set(bridgeOf("eu1", "eu", eu.URL), bridgeOf("us1", "us", us.URL))
	// The origin must be allowed: the cluster's shared name.
	if got := join("https://" + eu.URL[len("http://"):]); got != wire.TypeWelcome {
		t.Fatalf("an https page nearest to an http-only node got %s, want to stay (welcome)", got)
	}
}
