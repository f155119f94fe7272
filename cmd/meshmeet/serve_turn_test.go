package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/logging"
	pionturn "github.com/pion/turn/v5"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/wire"
	"github.com/meshmeet/meshmeet/turn"
)

func testTURNConfig(t *testing.T) *Config {
	t.Helper()
	cfg := &Config{HTTPAddr: "127.0.0.1:7880", RTCPort: 7882, PublicIP: "127.0.0.1"}
	cfg.TURN = turnConfig{Addr: "127.0.0.1:0", RelayPorts: "49152-65535", CredentialTTL: turn.DefaultCredentialTTL,
		MaxAllocs: 100, MaxUserAllocs: 10, MaxBitrate: 10_000_000}
	return cfg
}

func TestTURNFlagsRefuseBadConfig(t *testing.T) {
	keys := devKeys()
	log := slog.New(slog.DiscardHandler)
	shortSecret := filepath.Join(t.TempDir(), "short")
	os.WriteFile(shortSecret, []byte("too short\n"), 0o600)
	tests := []struct {
		name string
		mod  func(*Config, *clusterKeys)
		want string
	}{
		{"invalid allow-peer", func(c *Config, _ *clusterKeys) { c.TURN.AllowPeers = *cli.NewStringSlice("10.0.0.0/33") }, "--turn-allow-peer"},
		{"garbage allow-peer", func(c *Config, _ *clusterKeys) { c.TURN.AllowPeers = *cli.NewStringSlice("8.8.8.8/32", "example.com") }, "--turn-allow-peer"},
		{"no secret", func(_ *Config, k *clusterKeys) { k.TURNSecret = nil }, "no TURN secret"},
		{"missing secret file", func(c *Config, _ *clusterKeys) { c.TURN.SecretFile = "/nonexistent/turn-secret" }, "--turn-secret-file"},
		{"short secret file", func(c *Config, _ *clusterKeys) { c.TURN.SecretFile = shortSecret }, "at least 16 bytes"},
		{"unspecified public IP", func(c *Config, _ *clusterKeys) { c.PublicIP = "0.0.0.0" }, "--public-ip"},
		{"hostname public IP", func(c *Config, _ *clusterKeys) { c.PublicIP = "meet.example.com" }, "--public-ip"},
		{"bad relay ports", func(c *Config, _ *clusterKeys) { c.TURN.RelayPorts = "6000-5000" }, "--turn-relay-ports"},
		{"zero relay port", func(c *Config, _ *clusterKeys) { c.TURN.RelayPorts = "0-100" }, "--turn-relay-ports"},
		{"TLS without key", func(c *Config, _ *clusterKeys) { c.TURN.TLSAddr = "127.0.0.1:0"; c.TURN.CertFile = "x.pem" }, "go together"},
		{"zero TTL", func(c *Config, _ *clusterKeys) { c.TURN.CredentialTTL = 0 }, "--turn-credential-ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, k := testTURNConfig(t), keys
			tt.mod(cfg, &k)
			g, ctx := errgroup.WithContext(context.Background())
			_, err := startTURN(ctx, g, cfg, k, log)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("startTURN: %v, want an error about %q", err, tt.want)
			}
			if strings.Contains(err.Error(), string(k.TURNSecret)) && len(k.TURNSecret) > 0 {
				t.Fatal("the error contains the secret")
			}
		})
	}
}

func TestNoTURN(t *testing.T) {
	cfg := testTURNConfig(t)
	cfg.TURN.Disabled = true
	cfg.TURN.AllowPeers = *cli.NewStringSlice("not even parsed")
	g, ctx := errgroup.WithContext(context.Background())
	tn, err := startTURN(ctx, g, cfg, clusterKeys{}, slog.New(slog.DiscardHandler))
	if err != nil || len(tn.ICEServers("session")) != 0 || tn.Server != nil {
		t.Fatalf("--no-turn: %+v, %v", tn, err)
	}
	tn.SessionEnded("session") // nothing to end
}

// selfSigned writes a certificate for turn.meshmeet.test and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "turn.meshmeet.test"},
		DNSNames: []string{"turn.meshmeet.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	leaf, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	return certFile, keyFile, pool
}

// TestStartTURN starts the embedded server as serve does, in dev mode on
// 127.0.0.1 with TLS, and checks the ICE servers handed to participants:
// URLs for UDP, TCP and TLS, fresh TURN REST credentials per call that
// allocate over each transport; and the dev-mode policy: the node's own
// RTC port on its own address is reachable, its HTTP port is not.
func TestStartTURN(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	bridge, err := net.ListenPacket("udp4", "127.0.0.1:0") // stands in for the bridge's RTC port
	if err != nil {
		t.Fatal(err)
	}
	defer bridge.Close()
	httpSock, err := net.ListenPacket("udp4", "127.0.0.1:0") // a UDP socket on the HTTP port number
	if err != nil {
		t.Fatal(err)
	}
	defer httpSock.Close()

	cfg := testTURNConfig(t)
	cfg.RTCPort = bridge.LocalAddr().(*net.UDPAddr).Port
	cfg.HTTPAddr = httpSock.LocalAddr().String()
	cfg.TURN.TLSAddr, cfg.TURN.CertFile, cfg.TURN.KeyFile = "127.0.0.1:0", certFile, keyFile
	keys := devKeys()

	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	tn, err := startTURN(gctx, g, cfg, keys, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	iceServers := func() []wire.ICEServer { return tn.ICEServers(fmt.Sprintf("session-%d", time.Now().UnixNano())) }
	defer func() {
		cancel()
		if err := g.Wait(); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("TURN server: %v", err)
		}
	}()

	a, b := iceServers(), iceServers()
	if len(a) != 1 || len(a[0].URLs) != 3 {
		t.Fatalf("ICE servers %+v: want one server with UDP, TCP and TLS URLs", a)
	}
	if a[0].Username == b[0].Username || a[0].Credential == b[0].Credential {
		t.Fatal("two participants got the same credentials")
	}
	exp, id, ok := strings.Cut(a[0].Username, ":")
	if sec, err := strconv.ParseInt(exp, 10, 64); !ok || err != nil || time.Until(time.Unix(sec, 0)) > turn.DefaultCredentialTTL || !strings.Contains(id, ".session-") {
		t.Fatalf("username %q is not expiry:kid.sessionID with a 10-minute TTL", a[0].Username)
	}
	if a[0].Credential != turn.Password(keys.TURNSecret, a[0].Username) {
		t.Fatal("password is not base64(HMAC-SHA1(TURN secret, username))")
	}
	byScheme := map[string]*url.URL{}
	for _, s := range a[0].URLs {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		byScheme[u.Scheme+"/"+u.Query().Get("transport")] = u
	}
	udpURL, tcpURL, tlsURL := byScheme["turn/udp"], byScheme["turn/tcp"], byScheme["turns/tcp"]
	if udpURL == nil || tcpURL == nil || tlsURL == nil {
		t.Fatalf("URLs %v", a[0].URLs)
	}
	hostPort := func(u *url.URL) string { return strings.SplitN(u.Opaque, "?", 2)[0] }
	if !strings.HasPrefix(hostPort(udpURL), "127.0.0.1:") || !strings.HasPrefix(hostPort(tlsURL), "turn.meshmeet.test:") {
		t.Fatalf("URL hosts: %v", a[0].URLs)
	}

	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	for _, transport := range []string{"udp", "tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			creds := iceServers()[0]
			var conn net.PacketConn
			server := hostPort(udpURL)
			switch transport {
			case "udp":
				c, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				conn = c
			case "tcp":
				c, err := net.Dial("tcp4", hostPort(tcpURL))
				if err != nil {
					t.Fatal(err)
				}
				conn = pionturn.NewSTUNConn(c)
			case "tls":
				_, port, _ := net.SplitHostPort(hostPort(tlsURL))
				server = "127.0.0.1:" + port
				c, err := tls.Dial("tcp4", server, &tls.Config{RootCAs: pool, ServerName: "turn.meshmeet.test"})
				if err != nil {
					t.Fatal(err)
				}
				conn = pionturn.NewSTUNConn(c)
			}
			defer conn.Close()
			cl, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: server, STUNServerAddr: server,
				Username: creds.Username, Password: creds.Credential, Conn: conn, LoggerFactory: quiet, RTO: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := cl.Listen(); err != nil {
				t.Fatal(err)
			}
			relay, err := cl.Allocate()
			if err != nil {
				t.Fatalf("Allocate over %s: %v", transport, err)
			}
			defer relay.Close()

			// Dev mode: the bridge's RTC port on the node's own address is
			// the one reachable loopback destination; the HTTP port is not.
			// The denied packet goes first; when the bridge has its packet,
			// the server has dropped the other.
			buf := make([]byte, 1500)
			for round := 0; round < 5; round++ {
				if _, err := relay.WriteTo([]byte("to http"), httpSock.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				if _, err := relay.WriteTo([]byte("to bridge"), bridge.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				bridge.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, _, err := bridge.ReadFrom(buf)
				if err != nil || string(buf[:n]) != "to bridge" {
					t.Fatalf("bridge got %q, %v", buf[:n], err)
				}
			}
			httpSock.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, _, err := httpSock.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the HTTP port received %q through TURN", buf[:n])
			}
			// Another loopback address stays denied.
			other, _ := net.ResolveUDPAddr("udp4", "127.0.0.2:9")
			if _, err := relay.WriteTo([]byte("x"), other); err == nil {
				t.Fatal("permission to 127.0.0.2 granted")
			}
			// So does a public address: it is no bridge of the cluster.
			public, _ := net.ResolveUDPAddr("udp4", "8.8.8.8:53")
			if _, err := relay.WriteTo([]byte("x"), public); err == nil {
				t.Fatal("permission to a public address that is no bridge granted")
			}
		})
	}
}

// TestTURNSecretFileRotation: a changed --turn-secret-file becomes the
// current secret (the overlap itself is tested in turn, with a server);
// an unreadable file keeps the current secret.
func TestTURNSecretFileRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	first, second := "first secret, long enough....", "second secret, long enough..."
	os.WriteFile(path, []byte(first+"\n"), 0o600)
	s, err := readSecretFile(path)
	if err != nil || string(s) != first {
		t.Fatalf("readSecretFile: %q, %v", s, err)
	}
	secrets := turn.NewSecrets(s)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		watchSecretFile(ctx, path, secrets, time.Minute, time.Millisecond, slog.New(slog.DiscardHandler))
		close(done)
	}()
	defer func() { cancel(); <-done }()

	os.WriteFile(path, []byte(second+"\n"), 0o600)
	for i := 0; string(secrets.Current()) != second; i++ {
		if i > 10000 {
			t.Fatal("the new secret was never picked up")
		}
		time.Sleep(time.Millisecond)
	}
	os.Remove(path) // unreadable: the current secret stays
	time.Sleep(20 * time.Millisecond)
	if string(secrets.Current()) != second {
		t.Fatal("a missing secret file changed the secret")
	}
}

func TestDefaultTURNSockets(t *testing.T) {
	for procs, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 8: 4, 32: 16, 64: 16} {
		if got := defaultTURNSockets(procs); got != want {
			t.Errorf("defaultTURNSockets(%d) = %d, want %d", procs, got, want)
		}
	}
}

// TestTURNSessionChurn is the join/leave exhaustion through serve's
// wiring: each join gets credentials from ICEServers for a new session
// and makes an allocation it never releases (pion's client closed without
// a Refresh of 0, as a hostile participant would), each leave calls
// SessionEnded. 500 cycles fit in a node that holds 100 allocations;
// before, every cycle's allocation lived on until its lifetime ended.
func TestTURNSessionChurn(t *testing.T) {
	cfg := testTURNConfig(t) // 100 allocations in total
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	tn, err := startTURN(gctx, g, cfg, devKeys(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); g.Wait() }()
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	for i := 0; i < 500; i++ {
		id := fmt.Sprintf("churn-%d", i)
		ice := tn.ICEServers(id)
		if len(ice) != 1 || !strings.HasSuffix(ice[0].Username, "."+id) {
			t.Fatalf("ICE servers of session %s: %+v", id, ice)
		}
		server := strings.TrimPrefix(strings.SplitN(ice[0].URLs[0], "?", 2)[0], "turn:")
		// Each participant from its own loopback address: the 401 limit
		// per source is not what this test is about.
		conn, err := net.ListenPacket("udp4", fmt.Sprintf("127.0.%d.%d:0", 1+i/200, 2+i%200))
		if err != nil {
			t.Fatal(err)
		}
		cl, err := pionturn.NewClient(&pionturn.ClientConfig{TURNServerAddr: server, STUNServerAddr: server,
			Username: ice[0].Username, Password: ice[0].Credential, Conn: conn, LoggerFactory: quiet, RTO: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Listen(); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Allocate(); err != nil {
			t.Fatalf("cycle %d: Allocate: %v (stats %+v)", i, err, tn.Server.Stats())
		}
		cl.Close() // no Refresh of 0: the allocation stays until the session ends
		conn.Close()
		tn.SessionEnded(id)
		if n := tn.Server.Stats().Allocations; n != 0 {
			t.Fatalf("cycle %d: %d allocations after the session ended", i, n)
		}
	}
}

// TestTURNFollowsBridges: the TURN peer set is this node's bridge plus the
// WebRTC address of every member gossip shows alive, and it
// follows membership: a bridge that left is dropped.
func TestTURNFollowsBridges(t *testing.T) {
	own := netip.MustParseAddrPort("127.0.0.1:7882")
	members := []mesh.Member{
		{Name: "a", State: mesh.MemberAlive, Meta: mesh.NodeMeta{WebRTCAddr: "198.51.100.1:7882"}},
		{Name: "b", State: mesh.MemberAlive, Meta: mesh.NodeMeta{WebRTCAddr: "[2001:db8::2]:7882"}},
		{Name: "c", State: mesh.MemberDead, Meta: mesh.NodeMeta{WebRTCAddr: "198.51.100.3:7882"}},
		{Name: "d", State: mesh.MemberLeft, Meta: mesh.NodeMeta{WebRTCAddr: "198.51.100.4:7882"}},
		{Name: "e", State: mesh.MemberAlive, Meta: mesh.NodeMeta{WebRTCAddr: "bridge.example:7882"}},
		{Name: "f", State: mesh.MemberAlive},
	}
	got := bridgeAddrs(members, []netip.AddrPort{own})
	want := []netip.AddrPort{own, netip.MustParseAddrPort("198.51.100.1:7882"), netip.MustParseAddrPort("[2001:db8::2]:7882")}
	if !slices.Equal(got, want) {
		t.Fatalf("bridgeAddrs = %v, want %v", got, want)
	}

	cfg := testTURNConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	tn, err := startTURN(gctx, g, cfg, devKeys(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); g.Wait() }()
	var mu sync.Mutex
	current := members[:2]
	g.Go(func() error {
		tn.followBridges(gctx, func() []mesh.Member { mu.Lock(); defer mu.Unlock(); return slices.Clone(current) })
		return nil
	})
	policy := tn.setup.server.Policy
	wait := func(ap netip.AddrPort, in bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); slices.Contains(policy.Bridges(), ap) != in; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s in the bridge set: %v, want %v (set %v)", ap, !in, in, policy.Bridges())
			}
		}
	}
	a := netip.MustParseAddrPort("198.51.100.1:7882")
	wait(a, true)
	if policy.Check(a) != nil || policy.Check(netip.MustParseAddrPort("198.51.100.1:7883")) == nil {
		t.Fatal("a bridge's media address must be reachable, its other ports not")
	}
	mu.Lock()
	current = members[1:2] // a left the cluster
	mu.Unlock()
	wait(a, false)
	if policy.Check(a) == nil {
		t.Fatal("a bridge that left is still reachable")
	}
	if policy.Check(netip.AddrPortFrom(own.Addr(), uint16(cfg.RTCPort))) != nil {
		t.Fatal("this node's own bridge must stay reachable")
	}
}
