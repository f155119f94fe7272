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
			if nu := netFrom.(*net.UDPAddr); !bytes.Equal(nu.IP, fu.IP) || nu.Port != fu.Port || nu.Zone != fu.Zone {
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
