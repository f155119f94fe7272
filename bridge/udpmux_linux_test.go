package bridge

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// reusePortSockets opens n UDP sockets on 127.0.0.1, one port, with
// SO_REUSEPORT, as `meshmeet serve --rtc-sockets n` does.
func reusePortSockets(t testing.TB, n int) []net.PacketConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	addr := "127.0.0.1:0"
	var out []net.PacketConn
	for range n {
		pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			t.Fatal(err)
		}
		addr = pc.LocalAddr().String()
		out = append(out, pc)
	}
	return out
}

// startBridgeSockets runs a bridge on n SO_REUSEPORT sockets (UDPConn and
// n-1 UDPConns) on 127.0.0.1 until the test ends.
func startBridgeSockets(t *testing.T, n int) *Bridge {
	t.Helper()
	socks := reusePortSockets(t, n)
	return runBridge(t, Config{UDPConn: socks[0], UDPConns: socks[1:], IncludeLoopback: true, Logger: testLogger()})
}

// TestRTCSocketsBridge: a bridge reading two SO_REUSEPORT sockets through
// udpMux serves a room of pion clients, each PeerConnection from its own
// port: everyone receives everyone's audio and video, and both sockets
// read datagrams (the kernel spreads the clients' addresses by hash; the
// test adds clients, up to 12, until both have, which 4 clients already
// do but for a 1-in-128 chance).
func TestRTCSocketsBridge(t *testing.T) {
	before := goroutines()
	b := startBridgeSockets(t, 2)
	var log roomLog
	r := b.NewRoom("room-sockets", log.events())
	api := clientAPI(t)
	var clients []*client
	add := func() {
		c := newClient(t, api, r, fmt.Sprintf("p%d", len(clients)))
		c.publish(nil)
		clients = append(clients, c)
	}
	for range 4 {
		add()
	}
	waitAll := func() {
		for _, c := range clients {
			waitReceives(t, c, r, 2*(len(clients)-1))
		}
	}
	waitAll()
	m := func() *udpMux {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.udpMux.(*udpMux)
	}()
	for len(clients) < 12 {
		if got := m.received(); got[0] > 0 && got[1] > 0 {
			break
		}
		add()
		waitAll()
	}
	got := m.received()
	st := b.Stats()
	t.Logf("%d clients; datagrams read per socket %v; drops %+v", len(clients), got, st.Drops)
	if got[0] == 0 || got[1] == 0 {
		t.Fatalf("datagrams read per socket %v: one socket read nothing", got)
	}
	if st.ReceivedPackets == 0 || st.ForwardedPackets == 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, c := range clients {
		c.close()
	}
	r.Close()
	eventually(t, 10e9, "the mux forgets every address", func() bool { return m.addrCount() == 0 })
	b.Close()
	checkGoroutines(t, before)
}

// envTestSockets returns BRIDGE_TEST_SOCKETS (2..16) SO_REUSEPORT sockets
// for startBridge, nil when unset: `BRIDGE_TEST_SOCKETS=2 go test
// ./bridge/` runs the bridge's tests over the multi-socket mux.
func envTestSockets(t testing.TB) []net.PacketConn {
	n, _ := strconv.Atoi(os.Getenv("BRIDGE_TEST_SOCKETS"))
	if n < 2 || n > 16 {
		return nil
	}
	return reusePortSockets(t, n)
}
