//go:build linux

package turn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// dataPlaneOf returns ts's data plane once Run has made it.
func dataPlaneOf(t *testing.T, ts *testServer) *dataPlane {
	t.Helper()
	ts.mu.Lock()
	dp := ts.dp
	ts.mu.Unlock()
	if dp == nil || len(dp.loops) != 1 {
		t.Fatal("the server's UDP listener is not on the data plane")
	}
	return dp
}

func listenUDP(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// channelData writes a ChannelData frame of num carrying payload into
// frame and returns it.
func channelData(frame []byte, num uint16, payload []byte) []byte {
	binary.BigEndian.PutUint16(frame[0:2], num)
	binary.BigEndian.PutUint16(frame[2:4], uint16(len(payload)))
	return frame[:4+copy(frame[4:], payload)]
}

// TestDataPlane drives the data plane with a raw client: channel traffic
// both ways is relayed intact by the loops (not by pion), a channel to a
// denied port and unknown or malformed frames are dropped and counted,
// and an allocation's channels leave the table with it.
func TestDataPlane(t *testing.T) {
	peer, peerAP := listenUDP(t)
	canary, canaryAP := listenUDP(t)
	ts := startServer(t, []uint16{canaryAP.Port()}, nil)
	rc := rawAllocate(t, ts)
	dp := dataPlaneOf(t, ts)
	for num, to := range map[uint16]netip.AddrPort{0x4001: peerAP, 0x4002: canaryAP} {
		// pion's permission handler sees only the IP (allowed): the
		// channel to the canary's denied port is bound, and the data
		// plane drops its traffic.
		if r := rc.bind(num, to); r.Type.Class != stun.ClassSuccessResponse {
			t.Fatalf("ChannelBind %#x: %v", num, r)
		}
	}

	// A channel event naming this relay socket but another client (an old
	// allocation's late ChannelBind after the port was reused) is ignored.
	other := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(rc.c.LocalAddr().(*net.UDPAddr).Port) ^ 1}
	dp.onChannelCreated(other, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ts.udp)), "UDP", "", "",
		net.UDPAddrFromAddrPort(rc.relay), net.UDPAddrFromAddrPort(peerAP), 0x4009)
	dp.mu.RLock()
	n := len(dp.chans)
	dp.mu.RUnlock()
	if n != 2 {
		t.Fatalf("%d channels in the table after a stray event, want the 2 bound", n)
	}

	frame, buf := make([]byte, 1500), make([]byte, 1500)
	// exchange sends payload from the client on channel 0x4001, checks
	// what the peer gets, and the peer's reply the client gets.
	exchange := func(payload []byte) {
		t.Helper()
		if _, err := rc.c.Write(channelData(frame, 0x4001, payload)); err != nil {
			t.Fatal(err)
		}
		peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil || !bytes.Equal(buf[:n], payload) || from != rc.relay {
			t.Fatalf("peer got %d bytes from %v (%v), want %d from %v", n, from, err, len(payload), rc.relay)
		}
		reply := append([]byte("re:"), payload...)
		if _, err := peer.WriteToUDPAddrPort(reply, from); err != nil {
			t.Fatal(err)
		}
		rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err = rc.c.Read(buf); err != nil {
			t.Fatal(err)
		}
		if n < 4 || binary.BigEndian.Uint16(buf[0:2]) != 0x4001 || int(binary.BigEndian.Uint16(buf[2:4])) != len(reply) || !bytes.Equal(buf[4:n], reply) {
			t.Fatalf("client got % x, want ChannelData 0x4001 with %q", buf[:n], reply)
		}
	}
	byPion := ts.ctr.pionPackets.Load()
	relayed := ts.Stats().RelayedPackets
	sizes := []int{0, 1, 3, 170, 1199, 1400}
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i*31 + j)
		}
		exchange(p)
	}
	if got := ts.ctr.pionPackets.Load() - byPion; got != 0 {
		t.Errorf("pion relayed %d of the channel packets, want none: the data plane relays them", got)
	}
	if got := ts.Stats().RelayedPackets - relayed; got != uint64(2*len(sizes)) {
		t.Errorf("RelayedPackets grew by %d, want %d", got, 2*len(sizes))
	}

	// Drops, each followed by a good exchange: the loop reads one socket
	// in order, so when the exchange is through the drop was counted.
	for _, tc := range []struct {
		name    string
		send    func()
		counter func(Stats) uint64
	}{
		{"channel to a denied port", func() { rc.c.Write(channelData(frame, 0x4002, []byte("to canary"))) }, func(s Stats) uint64 { return s.PacketsDenied }},
		{"unknown channel", func() { rc.c.Write(channelData(frame, 0x4003, []byte("nobody"))) }, func(s Stats) uint64 { return s.NoChannel }},
		{"length beyond the datagram", func() { rc.c.Write([]byte{0x40, 0x01, 0x00, 0x10, 1, 2}) }, func(s Stats) uint64 { return s.Malformed }},
		{"neither STUN nor ChannelData", func() { rc.c.Write([]byte{0xC0, 0, 0, 0, 0}) }, func(s Stats) uint64 { return s.Malformed }},
	} {
		before := tc.counter(ts.Stats())
		tc.send()
		exchange([]byte("sync"))
		if tc.counter(ts.Stats()) != before+1 {
			t.Errorf("%s: counter %d, want %d", tc.name, tc.counter(ts.Stats()), before+1)
		}
	}
	// From the denied port to the client: dropped by the policy, as pion
	// would for a peer without a channel or a permission.
	denied := ts.Stats().PacketsDenied
	canary.WriteToUDPAddrPort([]byte("from canary"), rc.relay)
	exchange([]byte("sync"))
	if ts.Stats().PacketsDenied != denied+1 {
		t.Errorf("a datagram from the denied port was not counted as denied")
	}
	canary.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := canary.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the canary received %q", buf[:n])
	}

	// The allocation ends: its relay socket and channels leave the table,
	// and its channel numbers are unknown again.
	if r := rc.refresh(0); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Refresh 0: %v", r)
	}
	eventually(t, "the allocation's channels leave the table", func() bool {
		dp.mu.RLock()
		defer dp.mu.RUnlock()
		return len(dp.chans) == 0 && len(dp.relays) == 0
	})
	noChannel := ts.Stats().NoChannel
	rc.c.Write(channelData(frame, 0x4001, []byte("after the end")))
	eventually(t, "ChannelData after the end counted", func() bool { return ts.Stats().NoChannel == noChannel+1 })
	peer.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, _, err := peer.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer received %q after the allocation ended", buf[:n])
	}
}

// TestDataPlaneNoAlloc: relaying channel traffic allocates nothing. The
// server runs in this process; the client and the peer are raw sockets
// that allocate nothing themselves, so the process's allocation count over
// a thousand round trips is the server's (and whatever background timers
// do meanwhile, hence the small allowance).
func TestDataPlaneNoAlloc(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (CI runs it with -race, which allocates on its own)")
	}
	peer, peerAP := listenUDP(t)
	ts := startServer(t, nil, nil)
	rc := rawAllocate(t, ts)
	dataPlaneOf(t, ts)
	if r := rc.bind(0x4001, peerAP); r.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("ChannelBind: %v", r)
	}
	frame, buf := make([]byte, 1500), make([]byte, 1500)
	msg := channelData(frame, 0x4001, make([]byte, 170))
	roundTrip := func() {
		if _, err := rc.c.Write(msg); err != nil {
			t.Fatal(err)
		}
		n, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := peer.WriteToUDPAddrPort(buf[:n], from); err != nil {
			t.Fatal(err)
		}
		if _, err := rc.c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	peer.SetReadDeadline(time.Now().Add(time.Minute))
	rc.c.SetReadDeadline(time.Now().Add(time.Minute))
	for range 100 {
		roundTrip()
	}
	const rounds = 1000
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range rounds {
		roundTrip()
	}
	runtime.ReadMemStats(&m1)
	if per := float64(m1.Mallocs-m0.Mallocs) / (2 * rounds); per > 0.02 {
		t.Fatalf("%.3f allocations per relayed packet (%d over %d packets), want none", per, m1.Mallocs-m0.Mallocs, 2*rounds)
	}
}

// eventually polls cond until it holds, failing after 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
