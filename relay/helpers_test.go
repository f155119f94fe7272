package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/bridge"
)

// testCA is a cluster CA for tests, shaped like mesh's: Ed25519, node
// certificates for both TLS client and server, chains checked without host
// names.
type testCA struct {
	key  ed25519.PrivateKey
	cert *x509.Certificate
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{key: key, cert: c, pool: pool}
}

// issue returns a node certificate signed by ca, or self-signed when ca is
// nil.
func issue(t testing.TB, ca *testCA, name string) tls.Certificate {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames: []string{"meshmeet-node"}}
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// tlsPair returns server and client configs presenting cert and trusting
// pool, as mesh.PKI builds them.
func tlsPair(cert tls.Certificate, pool *x509.CertPool) (server, client *tls.Config) {
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("no certificate")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		_, err = c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		return err
	}
	server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: verify, InsecureSkipVerify: true}
	client = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ServerName: "meshmeet-node",
		VerifyPeerCertificate: verify, InsecureSkipVerify: true}
	return server, client
}

func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("RELAY_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// gateConn is a PacketConn whose traffic a test can black-hole, to break a
// link the way a network does.
type gateConn struct {
	net.PacketConn
	blocked   atomic.Bool
	dropEvery atomic.Int64 // > 0: drop every n-th packet read
	reads     atomic.Int64
}

func (c *gateConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			return n, a, err
		}
		if c.blocked.Load() {
			continue
		}
		if k := c.dropEvery.Load(); k > 0 && c.reads.Add(1)%k == 0 {
			continue
		}
		return n, a, err
	}
}

// SetReadBuffer and SetWriteBuffer let quic-go size the socket buffers.
func (c *gateConn) SetReadBuffer(n int) error  { return c.PacketConn.(*net.UDPConn).SetReadBuffer(n) }
func (c *gateConn) SetWriteBuffer(n int) error { return c.PacketConn.(*net.UDPConn).SetWriteBuffer(n) }

func (c *gateConn) WriteTo(b []byte, a net.Addr) (int, error) {
	if c.blocked.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, a)
}

// node is one bridge and its relay in a test.
type node struct {
	name  string
	relay *Relay
	br    *bridge.Bridge
	conn  *gateConn
	msgs  chan string // room messages received: "conference from data"
}

type nodeOpt func(*Config)

// startNode runs a bridge and a relay on loopback until the test ends.
func startNode(t testing.TB, ca *testCA, name string, opts ...nodeOpt) *node {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gc := &gateConn{PacketConn: pc}
	srv, cli := tlsPair(issue(t, ca, name), ca.pool)
	n := &node{name: name, conn: gc, msgs: make(chan string, 100)}
	cfg := Config{PacketConn: gc, ServerTLS: srv, ClientTLS: cli, NodeName: name, Logger: testLogger().With("node", name),
		IdleTimeout: 300 * time.Millisecond, LinkTimeout: time.Second, ReconnectMax: 300 * time.Millisecond,
		StatsInterval: 200 * time.Millisecond,
		OnRoomMessage: func(conf, from string, data []byte) {
			select {
			case n.msgs <- conf + " " + from + " " + string(data):
			default:
			}
		}}
	for _, o := range opts {
		o(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.relay = r
	bpc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	br, err := bridge.New(bridge.Config{UDPConn: bpc, IncludeLoopback: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	n.br = br
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := r.Run(ctx); err != nil {
			t.Errorf("relay Run: %v", err)
		}
	}()
	go func() {
		defer wg.Done()
		br.Run(ctx)
	}()
	t.Cleanup(func() {
		r.Close()
		cancel()
		wg.Wait()
		pc.Close()
	})
	return n
}

func (n *node) peer() Peer { return Peer{Node: n.name, Addr: n.conn.LocalAddr().String()} }

// waitFor polls cond until it holds; the timeout only guards against a
// hang.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
