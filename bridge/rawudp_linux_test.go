//go:build linux

package bridge

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"golang.org/x/sys/unix"
)

// TestRawUDPReads: the raw reads give the same bytes and sender address
// as net.UDPConn would (IPv4, and an IPv6 socket's IPv4-mapped sender),
// wait for a datagram when the socket is empty, and end with an error
// when the socket closes.
func TestRawUDPReads(t *testing.T) {
	for _, tc := range []struct{ network, listen, dial string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp", "[::]:0", "127.0.0.1"}, // dual-stack: the sender comes as ::ffff:127.0.0.1
	} {
		t.Run(tc.network+" "+tc.listen, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.listen)
			if err != nil {
				t.Skip("no such socket here:", err)
			}
			r := rawUDPConn(pc)
			if _, ok := r.(*rawUDP); !ok {
				t.Fatalf("rawUDPConn gave %T, want *rawUDP", r)
			}
			ap, ok := r.(ice.AddrPortReaderWriter)
			if !ok {
				t.Fatal("not an ice.AddrPortReaderWriter: pion's mux would not use the raw reads")
			}
			port := pc.LocalAddr().(*net.UDPAddr).Port
			s, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			to := &net.UDPAddr{IP: net.ParseIP(tc.dial), Port: port}

			// The reader waits in the netpoller until a datagram comes.
			type got struct {
				n    int
				from netip.AddrPort
				err  error
			}
			ch := make(chan got, 1)
			buf := make([]byte, 1500)
			go func() {
				n, from, err := ap.ReadFromAddrPort(buf)
				ch <- got{n, from, err}
			}()
			time.Sleep(50 * time.Millisecond) // let it park on the empty socket (not a timed assertion)
			want := []byte("\x80\x6fhello raw read")
			if _, err := s.WriteTo(want, to); err != nil {
				t.Fatal(err)
			}
			g := <-ch
			if g.err != nil {
				t.Fatal(g.err)
			}
			if !bytes.Equal(buf[:g.n], want) {
				t.Fatalf("read %q, want %q", buf[:g.n], want)
			}
			// What net.UDPConn itself reports for the same sender.
			if _, err := s.WriteTo(want, to); err != nil {
				t.Fatal(err)
			}
			_, std, err := pc.(*net.UDPConn).ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if g.from != std {
				t.Fatalf("raw read's sender %v, net.UDPConn's %v", g.from, std)
			}
			if g.from.Port() != uint16(s.LocalAddr().(*net.UDPAddr).Port) {
				t.Fatalf("sender port %d, want %d", g.from.Port(), s.LocalAddr().(*net.UDPAddr).Port)
			}

			// A datagram longer than the buffer is cut, as recvfrom does.
			if _, err := s.WriteTo(bytes.Repeat([]byte{1}, 100), to); err != nil {
				t.Fatal(err)
			}
			if n, _, err := ap.ReadFromAddrPort(buf[:10]); err != nil || n != 10 {
				t.Fatalf("short buffer: %d, %v", n, err)
			}

			// Close wakes a waiting reader with net.ErrClosed.
			go func() {
				_, _, err := ap.ReadFromAddrPort(buf)
				ch <- got{err: err}
			}()
			time.Sleep(50 * time.Millisecond)
			r.Close()
			if g := <-ch; !errors.Is(g.err, net.ErrClosed) {
				t.Fatalf("read after close: %v, want net.ErrClosed", g.err)
			}
		})
	}
}

// TestRawUDPReadNoAlloc: a raw read allocates nothing.
func TestRawUDPReadNoAlloc(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := rawUDPConn(pc).(*rawUDP)
	defer r.Close()
	s, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	to := netip.MustParseAddrPort(pc.LocalAddr().String())
	sc := s.(*net.UDPConn)
	pkt := make([]byte, 200)
	buf := make([]byte, 1500)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := sc.WriteToUDPAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
		if n, _, err := r.ReadFromAddrPort(buf); err != nil || n != len(pkt) {
			t.Fatalf("read %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per send and raw read, want 0", allocs)
	}
}

// TestRawUDPDontFragment: the media socket sends with the don't-fragment
// bit and no path-MTU bookkeeping, and a 1,400-byte datagram still goes
// through.
func TestRawUDPDontFragment(t *testing.T) {
	for _, tc := range []struct{ network, listen string }{{"udp4", "127.0.0.1:0"}, {"udp", "[::]:0"}} {
		network := tc.network
		pc, err := net.ListenPacket(network, tc.listen)
		if err != nil {
			t.Skip("no such socket here:", err)
		}
		r := rawUDPConn(pc).(*rawUDP)
		var got int
		var gerr error
		if err := r.rc.Control(func(fd uintptr) {
			got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER)
		}); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if got != unix.IP_PMTUDISC_PROBE {
			t.Fatalf("%s: IP_MTU_DISCOVER = %d, want IP_PMTUDISC_PROBE (%d)", network, got, unix.IP_PMTUDISC_PROBE)
		}
		s, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), s.LocalAddr().(*net.UDPAddr).AddrPort().Port())
		if _, err := r.WriteToAddrPort(make([]byte, 1400), to); err != nil {
			t.Fatalf("%s: a 1,400-byte datagram: %v", network, err)
		}
		buf := make([]byte, 2000)
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, _, err := s.ReadFrom(buf); err != nil || n != 1400 {
			t.Fatalf("%s: received %d, %v", network, n, err)
		}
		s.Close()
		r.Close()
	}
}

// TestRawUDPWrites: the raw writes deliver the same bytes from the same
// source as net.UDPConn's (an IPv4 socket, and a dual-stack socket sending
// to IPv4 as v4-mapped), through WriteTo and WriteToAddrPort alike;
// allocate nothing; and an address the socket cannot take fails as
// net.UDPConn fails.
func TestRawUDPWrites(t *testing.T) {
	for _, tc := range []struct{ network, listen string }{
		{"udp4", "127.0.0.1:0"},
		{"udp", "[::]:0"},
	} {
		t.Run(tc.network+" "+tc.listen, func(t *testing.T) {
			pc, err := net.ListenPacket(tc.network, tc.listen)
			if err != nil {
				t.Skip("no such socket here:", err)
			}
			r, ok := rawUDPConn(pc).(*rawUDP)
			if !ok {
				t.Fatal("not wrapped")
			}
			defer r.Close()
			rx, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer rx.Close()
			to := rx.LocalAddr().(*net.UDPAddr)
			_ = rx.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 1500)
			check := func(what string, want []byte) {
				t.Helper()
				n, from, err := rx.ReadFrom(buf)
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if !bytes.Equal(buf[:n], want) {
					t.Fatalf("%s: got %q, want %q", what, buf[:n], want)
				}
				if from.(*net.UDPAddr).Port != pc.LocalAddr().(*net.UDPAddr).Port {
					t.Fatalf("%s: from %v, want port %d", what, from, pc.LocalAddr().(*net.UDPAddr).Port)
				}
			}
			if n, err := r.WriteTo([]byte("via WriteTo"), to); err != nil || n != 11 {
				t.Fatalf("WriteTo: %d, %v", n, err)
			}
			check("WriteTo", []byte("via WriteTo"))
			if _, err := r.WriteToAddrPort([]byte("via AddrPort"), to.AddrPort()); err != nil {
				t.Fatal(err)
			}
			check("WriteToAddrPort", []byte("via AddrPort"))
			mapped := netip.AddrPortFrom(netip.AddrFrom16(to.AddrPort().Addr().As16()), to.AddrPort().Port())
			if _, err := r.WriteToAddrPort([]byte("v4-mapped"), mapped); err != nil {
				t.Fatal(err)
			}
			check("v4-mapped", []byte("v4-mapped"))

			pkt := bytes.Repeat([]byte{0x80}, 100)
			ap := to.AddrPort()
			allocs := testing.AllocsPerRun(100, func() {
				if _, err := r.WriteToAddrPort(pkt, ap); err != nil {
					t.Fatal(err)
				}
				if _, _, err := rx.(*net.UDPConn).ReadFromUDPAddrPort(buf); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("%.1f allocations per raw write and read, want 0", allocs)
			}

			_, rawErr := r.WriteToAddrPort(pkt, netip.MustParseAddrPort("[2001:db8::1]:9"))
			if tc.network == "udp4" && rawErr == nil {
				t.Error("an IPv6 address through an IPv4 socket: no error")
			}
		})
	}
}
