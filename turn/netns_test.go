package turn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// netnsAddrs are the addresses given to the test namespace's loopback
// interface: a "public" network for the server, client and an allowed
// peer, and one address in each denied IPv4 range for canaries.
var netnsAddrs = []string{
	"27.0.0.1/24", "27.0.0.2/24", "27.0.0.5/24", // server, client, the cluster's bridge
	"27.0.0.6/24", // a public host that is no bridge
	"10.9.0.1/24", "100.64.0.1/10", "169.254.169.254/16", "172.16.0.1/12",
	"192.168.77.1/24", "192.0.0.192/24", "198.18.0.1/15",
}

// TestNetnsCanaries runs, as root, the TURN server and a client in a fresh
// network namespace where canary UDP and TCP listeners sit on loopback,
// private, CGNAT, link-local (the cloud metadata address), benchmark and
// IETF addresses, and on a service port of an allowed address. The client
// tries to relay to every canary, in IPv4 and IPv4-mapped form, by UDP and
// by TCP relay; then it relays to an allowed peer. Nothing may reach a
// canary. The namespace is deleted afterwards.
func TestNetnsCanaries(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ipBin, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("needs iproute2's ip")
	}
	var rb [4]byte
	rand.Read(rb[:])
	ns := "mmturn-" + hex.EncodeToString(rb[:])
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipBin, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() { exec.Command(ipBin, "netns", "del", ns).Run() })
	ip("-n", ns, "link", "set", "lo", "up")
	for _, a := range netnsAddrs {
		ip("-n", ns, "addr", "add", a, "dev", "lo") // no dummy module here; lo serves
	}
	cmd := exec.Command(ipBin, "netns", "exec", ns, os.Args[0], "-test.run=^TestNetnsChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "MESHMEET_NETNS_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestNetnsChild") {
		t.Fatalf("child in namespace: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

// TestNetnsChild is TestNetnsCanaries' body, run inside the namespace.
func TestNetnsChild(t *testing.T) {
	if os.Getenv("MESHMEET_NETNS_CHILD") != "1" {
		t.Skip("runs inside TestNetnsCanaries' namespace")
	}
	canaries := []string{
		"127.0.0.1:9999", "10.9.0.1:9999", "100.64.0.1:9999", "169.254.169.254:80", "172.16.0.1:9999",
		"192.168.77.1:9999", "192.0.0.192:80", "198.18.0.1:9999",
		"27.0.0.5:7880", // a service port on the bridge's address
		"27.0.0.5:9998", // another port on the bridge's address
		"27.0.0.6:9999", // a public address that is no bridge of the cluster
	}
	var hits atomic.Int64
	buf := make([]byte, 1500)
	var udpCanaries []net.PacketConn
	for _, a := range canaries {
		pc, err := net.ListenPacket("udp4", a)
		if err != nil {
			t.Fatalf("canary %s: %v", a, err)
		}
		defer pc.Close()
		udpCanaries = append(udpCanaries, pc)
		ln, err := net.Listen("tcp4", a)
		if err != nil {
			t.Fatalf("canary %s: %v", a, err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				hits.Add(1)
				t.Errorf("TCP canary %s was connected to", ln.Addr())
				c.Close()
			}
		}()
	}
	peer, err := net.ListenPacket("udp4", "27.0.0.5:9999")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()

	pc, err := net.ListenPacket("udp4", "27.0.0.1:3478")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp4", "27.0.0.1:3478")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		PacketConns: []net.PacketConn{pc},
		Listeners:   []net.Listener{ln},
		RelayIP:     netip.MustParseAddr("27.0.0.1"),
		Secrets:     NewSecrets(testSecret),
		Policy:      NewPolicy(nil, []netip.AddrPort{netip.MustParseAddrPort("27.0.0.5:9999")}, []uint16{7880, 3478}),
		Logger:      slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); <-done }()

	ts := &testServer{Server: srv, udp: "27.0.0.1:3478", tcp: "27.0.0.1:3478"}
	for _, tcp := range []bool{false, true} {
		user, pass := Credentials(testSecret, 5*time.Minute, time.Now())
		cl := dialFrom(t, ts, "27.0.0.2", user, pass, tcp)
		relay, err := cl.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		defer relay.Close()
		for _, a := range canaries {
			ap := netip.MustParseAddrPort(a)
			for _, ip := range []netip.Addr{ap.Addr(), netip.AddrFrom16(ap.Addr().As16())} { // IPv4 and IPv4-mapped
				relay.WriteTo([]byte("canary"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, ap.Port())))
			}
		}
		// A TCP relay (RFC 6062) to a canary is refused before any connect.
		if tcpAlloc, err := dialFrom(t, ts, "27.0.0.2", user, pass, tcp).AllocateTCP(); err == nil {
			tcpAlloc.Dial("tcp", "127.0.0.1:9999")
			t.Error("TCP relay allocation succeeded")
		}
		// The allowed peer receives: the server has handled what came before.
		if _, err := relay.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("allowed peer got %q, %v", buf[:n], err)
		}
	}
	for _, c := range udpCanaries {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, from, err := c.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			hits.Add(1)
			t.Errorf("UDP canary %s received %q from %v", c.LocalAddr(), buf[:n], from)
		}
	}
	st := srv.Stats()
	fmt.Printf("stats: %+v\n", st)
	if hits.Load() != 0 {
		t.Fatalf("%d canaries reached", hits.Load())
	}
	if st.PeerDenied == 0 || st.PacketsDenied == 0 || st.TCPRelayRefused == 0 {
		t.Fatalf("refusals not counted: %+v", st)
	}
}
