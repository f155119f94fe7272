package signaling_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// node is one meshmeet node in the test process: a real bridge on loopback
// sockets and a signaling server behind a real HTTP listener.
type node struct {
	URL string
	Dir *mesh.LocalDirectory
	Srv *signaling.Server
	Br  *bridge.Bridge
	// Stop shuts the node down as serve does on SIGTERM and waits for
	// signaling and the bridge to return. Idempotent; cleanup calls it too.
	Stop func()
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("MESHMEET_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startNode(t *testing.T, mod func(*signaling.Config)) *node {
	t.Helper()
	return startNodeLog(t, testLogger(t), mod)
}

func startNodeLog(t *testing.T, log *slog.Logger, mod func(*signaling.Config)) *node {
	t.Helper()
	return startNodeWith(t, log, nil, mod)
}

// startNodeServer is startNode with the test's http.Server settings.
func startNodeServer(t *testing.T, http func(*http.Server), mod func(*signaling.Config)) *node {
	t.Helper()
	return startNodeWith(t, testLogger(t), http, mod)
}

func startNodeWith(t *testing.T, log *slog.Logger, httpMod func(*http.Server), mod func(*signaling.Config)) *node {
	t.Helper()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp, err := net.Listen("tcp4", udp.LocalAddr().String())
	if err != nil {
		tcp = nil // ICE-TCP is optional here
	}
	cfg := bridge.Config{UDPConn: udp, PublicIPs: []string{"127.0.0.1"}, IncludeLoopback: true, Logger: log}
	if tcp != nil {
		cfg.TCPListener = tcp
	}
	br, err := bridge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := mesh.NewLocalDirectory()
	scfg := signaling.Config{
		NodeName:  "test-node",
		Region:    "local",
		RoomKey:   testRoomKey,
		Directory: dir,
		Bridge:    br,
		Logger:    log,
	}
	if mod != nil {
		mod(&scfg)
	}
	srv, err := signaling.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); br.Run(ctx) }()
	go func() { defer wg.Done(); srv.Run(ctx) }()
	hs := httptest.NewUnstartedServer(srv)
	if httpMod != nil {
		httpMod(hs.Config)
	}
	hs.Start()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			wg.Wait()
		})
	}
	t.Cleanup(func() {
		cancel()
		hs.CloseClientConnections()
		hs.Close()
		stop()
		udp.Close()
		if tcp != nil {
			tcp.Close()
		}
	})
	// Wait until Run marked the server ready.
	n := &node{URL: hs.URL, Dir: dir, Srv: srv, Br: br, Stop: stop}
	waitFor(t, 10*time.Second, "server ready", func() bool {
		resp, err := hs.Client().Get(hs.URL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return n
}

// testRoomKey is the nodes' HMAC key of room names.
var testRoomKey = []byte("0123456789abcdef0123456789abcdef")

// conferenceID returns the conference ID the directory holds for a live
// room: clients are never told it.
func conferenceID(t *testing.T, n *node, room string) string {
	t.Helper()
	r, ok, err := n.Dir.Lookup(context.Background(), mesh.NewRoomKey(testRoomKey, room))
	if err != nil || !ok || r.ConferenceID == "" {
		t.Fatalf("directory lookup: %v, found %v", err, ok)
	}
	return r.ConferenceID
}

// waitFor polls cond until it holds or the deadline passes. Deadlines are
// generous: this is a check that something happens, not how fast.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	waitForf(t, d, func() string { return what }, cond)
}

// waitForf is waitFor with a description made at the time of failure.
func waitForf(t *testing.T, d time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nextEvent returns the next event of one of the types, skipping others.
func nextEvent(t *testing.T, c *client.Client, types ...wire.Type) *wire.Message {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m, ok := <-c.Events():
			if !ok {
				t.Fatalf("session ended waiting for %v: %v", types, c.Err())
			}
			for _, ty := range types {
				if m.Type == ty {
					return m
				}
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %v", types)
		}
	}
}

func join(t *testing.T, n *node, room string, opts client.Options) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Join(ctx, n.URL, room, opts)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// wsURL is the node's WebSocket endpoint.
func wsURL(n *node) string { return "ws" + strings.TrimPrefix(n.URL, "http") + "/ws" }

// lenientSource lifts the per-source limits for tests whose many clients
// all come from one loopback address.
func lenientSource(c *signaling.Config) {
	c.MaxPerSource = 100000
	c.SourceJoinRate = 100000
	c.SourceJoinBurst = 100000
	c.MaxUnjoined = 100000
}

// dialFrom opens a signaling WebSocket from the local address ip, so that
// a test can play several sources on loopback (127.0.0.0/8 is all local).
// An empty ip lets the kernel choose.
func dialFrom(ctx context.Context, n *node, ip string) (*websocket.Conn, error) {
	d := &net.Dialer{}
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ws, _, err := websocket.Dial(ctx, wsURL(n), &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(wire.MaxFrameBytes)
	return ws, nil
}
