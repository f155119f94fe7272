package turn

import (
	"bytes"
	"net"
	"testing"
)

// TestFastUDP sends datagrams both ways between a plain UDP socket and a
// newFastUDP-wrapped one, over IPv4, IPv6 and a dual-stack socket talking
// to an IPv4 peer, and checks payloads and source addresses.
func TestFastUDP(t *testing.T) {
	for _, tc := range []struct{ name, fastNet, fastAddr, peerNet, peerAddr string }{
		{"ipv4", "udp4", "127.0.0.1:0", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0", "udp6", "[::1]:0"},
		{"dual-stack to ipv4", "udp", ":0", "udp4", "127.0.0.1:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.ListenPacket(tc.fastNet, tc.fastAddr)
			if err != nil {
				t.Skipf("no %s socket: %v", tc.fastNet, err)
			}
			fast := newFastUDP(raw)
			defer fast.Close()
			peer, err := net.ListenPacket(tc.peerNet, tc.peerAddr)
			if err != nil {
				t.Skipf("no %s socket: %v", tc.peerNet, err)
			}
			defer peer.Close()
			fastPort := fast.LocalAddr().(*net.UDPAddr).Port
			peerUA := peer.LocalAddr().(*net.UDPAddr)

			msg := []byte("peer to fast")
			to := &net.UDPAddr{IP: peerUA.IP, Port: fastPort}
			if _, err := peer.WriteTo(msg, to); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			n, from, err := fast.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], msg) {
				t.Fatalf("fast read %q, want %q", buf[:n], msg)
			}
			fu := from.(*net.UDPAddr)
			if !fu.IP.Equal(peerUA.IP) || fu.Port != peerUA.Port {
				t.Fatalf("fast read from %v, want %v", fu, peerUA)
			}

			// The address must have the net package's form (pion
			// compares addresses byte by byte): read one more datagram
			// through the unwrapped socket and compare.
			if _, err := peer.WriteTo(msg, to); err != nil {
				t.Fatal(err)
			}
			_, netFrom, err := raw.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if nu := netFrom.(*net.UDPAddr); !nu.IP.Equal(fu.IP) || nu.Port != fu.Port || nu.Zone != fu.Zone {
				t.Fatalf("fast read from %#v, the net package from %#v", fu, nu)
			}

			msg = []byte("fast to peer, a little longer")
			if n, err := fast.WriteTo(msg, from); err != nil || n != len(msg) {
				t.Fatalf("fast write: %d, %v", n, err)
			}
			n, from, err = peer.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], msg) || from.(*net.UDPAddr).Port != fastPort {
				t.Fatalf("peer read %q from %v", buf[:n], from)
			}
		})
	}
	t.Run("source changes", func(t *testing.T) {
		// The last source address is reused while it does not change;
		// a datagram from another peer must get that peer's address.
		raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fast := newFastUDP(raw)
		defer fast.Close()
		var peers []net.PacketConn
		for i := 0; i < 2; i++ {
			p, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			peers = append(peers, p)
		}
		buf := make([]byte, 100)
		for _, i := range []int{0, 0, 1, 1, 0} {
			if _, err := peers[i].WriteTo([]byte{byte(i)}, fast.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			n, from, err := fast.ReadFrom(buf)
			if err != nil {
				t.Fatal(err)
			}
			want := peers[i].LocalAddr().(*net.UDPAddr)
			if got := from.(*net.UDPAddr); n != 1 || buf[0] != byte(i) || !got.IP.Equal(want.IP) || got.Port != want.Port {
				t.Fatalf("datagram from peer %d: read %v from %v, want %v", i, buf[:n], got, want)
			}
		}
	})
	t.Run("closed", func(t *testing.T) {
		raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		fast := newFastUDP(raw)
		fast.Close()
		if _, _, err := fast.ReadFrom(make([]byte, 10)); err == nil {
			t.Fatal("read on a closed socket: no error")
		}
		if _, err := fast.WriteTo([]byte("x"), raw.LocalAddr()); err == nil {
			t.Fatal("write on a closed socket: no error")
		}
	})
}

// TestFastUDPNoAlloc: sending, and receiving from the last source, allocate
// nothing (the net package allocates a UDPAddr per datagram read).
// Skipped under -short, which CI runs with -race, where sync.Pool drops
// items on purpose.
func TestFastUDPNoAlloc(t *testing.T) {
	if testing.Short() {
		t.Skip("-short (the race detector makes sync.Pool allocate)")
	}
	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fast := newFastUDP(raw)
	defer fast.Close()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerUDP, fastAddr, peerAddr := peer.(*net.UDPConn), fast.LocalAddr().(*net.UDPAddr).AddrPort(), peer.LocalAddr()
	buf, msg := make([]byte, 1500), make([]byte, 170)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := peerUDP.WriteToUDPAddrPort(msg, fastAddr); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fast.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := fast.WriteTo(msg, peerAddr); err != nil {
			t.Fatal(err)
		}
		if _, _, err := peerUDP.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%.1f allocations per round trip, want 0", n)
	}
}
