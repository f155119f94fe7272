package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	pionturn "github.com/pion/turn/v5"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"
)

// TestTURNMetrics starts the embedded TURN server as serve does, refuses
// one Allocate with a malformed username, makes one allocation, and checks
// what a scrape reports: the refusal under its reason (every other reason
// present at 0), one live allocation, one made in total.
func TestTURNMetrics(t *testing.T) {
	cfg := testTURNConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	tn, err := startTURN(gctx, g, cfg, devKeys(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("TURN server: %v", err)
		}
	}()
	ts := tn.Server
	if ts == nil {
		t.Fatal("startTURN returned no server")
	}

	reg := testMetrics(t, ts)

	creds := tn.ICEServers("metrics-session")[0]
	server := strings.TrimPrefix(strings.SplitN(creds.URLs[0], "?", 2)[0], "turn:")
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	allocate := func(user, pass string) (net.PacketConn, error) {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		cl, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: server, STUNServerAddr: server,
			Username: user, Password: pass, Conn: conn, LoggerFactory: quiet, RTO: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		if err := cl.Listen(); err != nil {
			t.Fatal(err)
		}
		return cl.Allocate()
	}
	if _, err := allocate("malformed", "x"); err == nil {
		t.Fatal("Allocate with a malformed username succeeded")
	}
	relay, err := allocate(creds.Username, creds.Credential)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relay.Close()

	var want strings.Builder
	want.WriteString(`# HELP meshmeet_turn_allocations Live TURN allocations.
# TYPE meshmeet_turn_allocations gauge
meshmeet_turn_allocations 1
# HELP meshmeet_turn_allocations_total TURN allocations made since start.
# TYPE meshmeet_turn_allocations_total counter
meshmeet_turn_allocations_total 1
# HELP meshmeet_turn_refused_total TURN requests, connections or relayed packets refused, by reason.
# TYPE meshmeet_turn_refused_total counter
`)
	for _, r := range turnRefusals {
		n := 0
		if r.reason == "auth_malformed" {
			n = 1
		}
		fmt.Fprintf(&want, "meshmeet_turn_refused_total{reason=%q} %d\n", r.reason, n)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()),
		"meshmeet_turn_allocations", "meshmeet_turn_allocations_total", "meshmeet_turn_refused_total"); err != nil {
		t.Fatal(err)
	}
}

// TestTURNDeniesConfiguredServicePorts: the peer policy's service ports
// are the configured ones (HTTP, RTC, metrics, TURN, TURN/TLS, gossip,
// raft), not only the defaults, and the ports TURN bound are added.
func TestTURNDeniesConfiguredServicePorts(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	cfg := testTURNConfig(t)
	cfg.HTTPAddr, cfg.RTCPort, cfg.MetricsAddr = "127.0.0.1:8001", 8002, "127.0.0.1:8003"
	cfg.TURN.TLSAddr, cfg.TURN.CertFile, cfg.TURN.KeyFile = "127.0.0.1:0", certFile, keyFile
	cfg.Mesh.GossipAddr, cfg.Mesh.RaftAddr = "0.0.0.0:8005", "[::]:8006"
	cfg.TURN.AllowPeers = *cli.NewStringSlice("8.8.8.0/24", "2001:4860::/32")
	tc, err := buildTURN(cfg, devKeys(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint16{8001, 8002, 8003, 8005, 8006, 3478, 5349, 7880, 7946, 7947, 7443} {
		if !slices.Contains(tc.deny, port) {
			t.Errorf("port %d not in the deny list %v", port, tc.deny)
		}
	}
	if slices.Contains(tc.deny, 0) {
		t.Errorf("port 0 of an unbound address in the deny list %v", tc.deny)
	}

	if err := tc.listen(); err != nil {
		t.Fatal(err)
	}
	defer tc.closeListeners()
	for _, ln := range tc.server.Listeners { // TCP on --turn-addr, then TLS
		if port := uint16(ln.Addr().(*net.TCPAddr).Port); !slices.Contains(tc.deny, port) {
			t.Errorf("bound TURN port %d not in the deny list %v", port, tc.deny)
		}
	}
	// The ports are denied on every address; the bridge's own RTC port on
	// the node's public IP stays reachable.
	policy := tc.server.Policy
	if err := policy.Check(netip.MustParseAddrPort("127.0.0.1:8002")); err != nil {
		t.Errorf("own RTC port: %v", err)
	}
	for _, ap := range []string{"8.8.8.8:8005", "8.8.8.8:8006", "[2001:4860::8888]:8001"} {
		if err := policy.Check(netip.MustParseAddrPort(ap)); err == nil {
			t.Errorf("%s allowed", ap)
		}
	}
	if err := policy.Check(netip.MustParseAddrPort("8.8.8.8:8004")); err != nil {
		t.Errorf("an allowed global address on another port: %v", err)
	}
}
