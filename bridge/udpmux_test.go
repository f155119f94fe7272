package bridge

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// The multi-socket UDP mux's routing, on real loopback sockets. The
// sockets here are bound to different ports so that a test can choose
// which one a datagram arrives on; the mux does not care.

type muxEnv struct {
	m     *udpMux
	socks []*net.UDPConn
	stats *counters
}

func newMuxEnv(t testing.TB, n int) *muxEnv {
	t.Helper()
	env := &muxEnv{stats: &counters{}}
	var pcs []net.PacketConn
	for range n {
		pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		env.socks = append(env.socks, pc)
		pcs = append(pcs, rawUDPConn(pc)) // as the bridge hands them to the mux
	}
	env.m = newUDPMux(pcs, true, env.stats, testLogger())
	t.Cleanup(func() { env.m.Close() })
	return env
}

func (e *muxEnv) addr(i int) netip.AddrPort {
	return e.socks[i].LocalAddr().(*net.UDPAddr).AddrPort()
}

// peer is a remote endpoint: its own socket.
func muxPeer(t testing.TB) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func peerAddr(pc *net.UDPConn) netip.AddrPort { return pc.LocalAddr().(*net.UDPAddr).AddrPort() }

// bindingRequest is a STUN binding request with USERNAME user, as ICE
// sends (USERNAME, then integrity and fingerprint).
func bindingRequest(t testing.TB, user string) []byte {
	t.Helper()
	m, err := stun.Build(stun.BindingRequest, stun.TransactionID, stun.NewUsername(user),
		stun.NewShortTermIntegrity("password"), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// rtpLike is a datagram that is not STUN.
func rtpLike(n int) []byte {
	p := make([]byte, n)
	p[0], p[1] = 0x80, 111
	return p
}

func readWithin(t testing.TB, h net.PacketConn, p []byte) (int, netip.AddrPort) {
	t.Helper()
	_ = h.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, ap, err := h.(*muxHandle).ReadFromAddrPort(p)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	_ = h.SetReadDeadline(time.Time{})
	return n, ap
}

func waitCounter(t testing.TB, what string, c interface{ Load() uint64 }, want uint64) {
	t.Helper()
	eventually(t, 10*time.Second, what, func() bool { return c.Load() >= want })
	if got := c.Load(); got != want {
		t.Fatalf("%s: %d, want %d", what, got, want)
	}
}

// TestUDPMuxRouting: a binding request from an unknown address reaches the
// conn of its USERNAME's first part; a write teaches the conn the address,
// after which any datagram from it reaches the conn, and the reply leaves
// through the socket the address was last received on; unknown ufrags,
// non-STUN from unknown addresses, malformed STUN and oversized datagrams
// are dropped and counted; RemoveConnByUfrag forgets the addresses.
func TestUDPMuxRouting(t *testing.T) {
	env := newMuxEnv(t, 2)
	m := env.m
	m.start()
	h, err := m.GetConn("ufragA", env.socks[0].LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.GetConn("ufragA", &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9}); err == nil {
		t.Fatal("GetConn for an address the mux does not listen on worked")
	}
	peer := muxPeer(t)
	buf := make([]byte, 1600)

	// A check for ufragA from an unknown address, on socket 1.
	req := bindingRequest(t, "ufragA:remote")
	if _, err := peer.WriteToUDPAddrPort(req, env.addr(1)); err != nil {
		t.Fatal(err)
	}
	n, from := readWithin(t, h, buf)
	if n != len(req) || from != peerAddr(peer) {
		t.Fatalf("read %d bytes from %v, want %d from %v", n, from, len(req), peerAddr(peer))
	}
	if m.addrCount() != 0 {
		t.Fatal("a received check taught the mux an address (only writes do)")
	}

	// Dropped: unknown ufrag, not STUN from an unknown address, malformed
	// STUN, too big.
	st := env.stats
	send := func(p []byte) {
		if _, err := peer.WriteToUDPAddrPort(p, env.addr(0)); err != nil {
			t.Fatal(err)
		}
	}
	send(bindingRequest(t, "nobody:remote"))
	waitCounter(t, "unknown ufrag counted unroutable", &st.dropMuxUnroutable, 1)
	send(rtpLike(100))
	waitCounter(t, "non-STUN from an unknown address counted unroutable", &st.dropMuxUnroutable, 2)
	bad := append([]byte(nil), req...)
	binary.BigEndian.PutUint16(bad[2:4], uint16(len(req))) // length past the end
	send(bad)
	waitCounter(t, "malformed STUN counted", &st.dropMuxMalformed, 1)
	send(rtpLike(muxMaxDatagram + 1))
	waitCounter(t, "oversized datagram counted", &st.dropMuxMalformed, 2)

	// The reply to the check goes out through socket 1, where it came.
	reply := []byte("reply-1")
	if _, err := h.(*muxHandle).WriteToAddrPort(reply, peerAddr(peer)); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, src, err := peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "reply-1" || src != env.addr(1) {
		t.Fatalf("peer read %q from %v (%v), want reply-1 from socket 1 %v", buf[:n], src, err, env.addr(1))
	}
	if m.addrCount() != 1 {
		t.Fatalf("%d addresses after the write, want 1", m.addrCount())
	}

	// Now a known address: anything from it is routed, on either socket,
	// and the next write follows the socket it last arrived on.
	send(rtpLike(200))
	if n, _ := readWithin(t, h, buf); n != 200 {
		t.Fatalf("read %d bytes, want the 200-byte datagram", n)
	}
	if _, err := h.(*muxHandle).WriteToAddrPort([]byte("reply-0"), peerAddr(peer)); err != nil {
		t.Fatal(err)
	}
	n, src, err = peer.ReadFromUDPAddrPort(buf)
	if err != nil || string(buf[:n]) != "reply-0" || src != env.addr(0) {
		t.Fatalf("peer read %q from %v (%v), want reply-0 from socket 0 %v", buf[:n], src, err, env.addr(0))
	}
	if got := m.received(); got[0] != 5 || got[1] != 1 {
		t.Errorf("datagrams per socket %v, want [5 1]", got)
	}

	// RemoveConnByUfrag closes the conn and forgets its address.
	m.RemoveConnByUfrag("ufragA")
	if m.addrCount() != 0 {
		t.Fatalf("%d addresses after RemoveConnByUfrag", m.addrCount())
	}
	if _, _, err := h.(*muxHandle).ReadFromAddrPort(buf); !errors.Is(err, io.EOF) {
		t.Fatalf("read after RemoveConnByUfrag: %v, want EOF", err)
	}
	send(rtpLike(100))
	waitCounter(t, "datagram from a forgotten address counted unroutable", &st.dropMuxUnroutable, 3)
	if st.dropMuxQueueFull.Load() != 0 {
		t.Fatalf("queue full drops %d", st.dropMuxQueueFull.Load())
	}
}

// TestUDPMuxQueueBound: a conn holds muxQueueLen datagrams; the next one
// is dropped and counted, and reading makes room again.
func TestUDPMuxQueueBound(t *testing.T) {
	env := newMuxEnv(t, 1)
	m := env.m
	h, err := m.GetConn("ufragQ", env.socks[0].LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:5000")
	req := bindingRequest(t, "ufragQ:r")
	feed := func() bool {
		b := muxBufPool.Get().(*muxBuf)
		n := copy(b.b[:], req)
		if !m.dispatch(0, b, n, from) {
			muxBufPool.Put(b)
			return false
		}
		return true
	}
	for i := range muxQueueLen {
		if !feed() {
			t.Fatalf("datagram %d dropped", i)
		}
	}
	if feed() {
		t.Fatal("a datagram beyond the bound was queued")
	}
	if got := env.stats.dropMuxQueueFull.Load(); got != 1 {
		t.Fatalf("mux_queue_full %d, want 1", got)
	}
	buf := make([]byte, 1500)
	readWithin(t, h, buf)
	if !feed() {
		t.Fatal("no room after a read")
	}
	if _, _, err := h.(*muxHandle).ReadFromAddrPort(make([]byte, 10)); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("short read: %v, want io.ErrShortBuffer", err)
	}
	// Handles are counted: the conn lives while one is open.
	h2, err := m.GetConn("ufragQ", env.socks[0].LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if !feed() {
		t.Fatal("conn closed with a handle still open")
	}
	h2.Close()
	if feed() {
		t.Fatal("conn still routed after its last handle closed")
	}
}

// TestUDPMuxCloseEndsReaders: Close ends every socket's reader and
// unblocks the conns' readers; nothing is left running.
func TestUDPMuxCloseEndsReaders(t *testing.T) {
	before := goroutines()
	env := newMuxEnv(t, 3)
	env.m.start()
	h, err := env.m.GetConn("ufragC", env.socks[0].LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := h.(*muxHandle).ReadFromAddrPort(make([]byte, 1500))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the read block (either order passes)
	env.m.Close()
	if err := <-done; !errors.Is(err, io.EOF) {
		t.Fatalf("blocked read ended with %v, want EOF", err)
	}
	if _, err := env.m.GetConn("ufragC", env.socks[0].LocalAddr()); err == nil {
		t.Fatal("GetConn after Close worked")
	}
	env.m.Close() // idempotent
	checkGoroutines(t, before)
}

// TestUDPMuxNoAlloc: the read-and-dispatch path allocates nothing, for a
// datagram from a known address and for a binding request routed by its
// USERNAME: a peer sends, the socket's reader dispatches, the conn's
// reader reads.
func TestUDPMuxNoAlloc(t *testing.T) {
	env := newMuxEnv(t, 2)
	env.m.start()
	h, err := env.m.GetConn("ufragN", env.socks[0].LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	hh := h.(*muxHandle)
	known, stranger := muxPeer(t), muxPeer(t)
	if _, err := hh.WriteToAddrPort([]byte("hello"), peerAddr(known)); err != nil {
		t.Fatal(err)
	}
	media, req := rtpLike(1200), bindingRequest(t, "ufragN:r")
	buf := make([]byte, 1500)
	to := env.addr(1)
	for _, tc := range []struct {
		name string
		from *net.UDPConn
		p    []byte
	}{{"known address", known, media}, {"binding request", stranger, req}} {
		run := func() {
			if _, err := tc.from.WriteToUDPAddrPort(tc.p, to); err != nil {
				t.Fatal(err)
			}
			if n, _, err := hh.ReadFromAddrPort(buf); err != nil || n != len(tc.p) {
				t.Fatalf("read %d, %v", n, err)
			}
		}
		run()
		if allocs := testing.AllocsPerRun(1000, run); allocs != 0 {
			t.Errorf("%s: %.1f allocations per datagram, want 0", tc.name, allocs)
		}
	}
	if st := env.stats; st.dropMuxUnroutable.Load()+st.dropMuxMalformed.Load()+st.dropMuxQueueFull.Load() != 0 {
		t.Fatal("datagrams dropped")
	}
}

// FuzzUDPMuxRoute feeds arbitrary datagrams from an unknown address to the
// mux's dispatch: it never panics, each datagram is either queued or
// counted once, and the USERNAME the mux routes by is the one pion's STUN
// decoder finds (a datagram pion decodes, exactly as long as its header
// says, with a USERNAME, is routed by that USERNAME's ufrag).
func FuzzUDPMuxRoute(f *testing.F) {
	f.Add(bindingRequest(f, "ufragF:remote"))
	f.Add(bindingRequest(f, "other:remote"))
	f.Add(bindingRequest(f, "ufragF"))
	f.Add(bindingRequest(f, ":x"))
	f.Add(rtpLike(20))
	f.Add([]byte{0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 6, 0, 9})
	env := newMuxEnv(f, 1)
	m := env.m
	h, err := m.GetConn("ufragF", env.socks[0].LocalAddr())
	if err != nil {
		f.Fatal(err)
	}
	hh := h.(*muxHandle)
	from := netip.MustParseAddrPort("127.0.0.1:7000")
	drain := make([]byte, muxMaxDatagram)
	f.Fuzz(func(t *testing.T, p []byte) {
		ufrag, ok := stunLocalUfrag(p)
		msg := &stun.Message{Raw: append([]byte(nil), p...)}
		perr := msg.Decode()
		if ok {
			if perr != nil {
				t.Fatalf("routed by ufrag %q a message pion refuses: %v", ufrag, perr)
			}
			user, err := msg.Get(stun.AttrUsername)
			if err != nil || strings.Split(string(user), ":")[0] != string(ufrag) {
				t.Fatalf("ufrag %q, pion's USERNAME %q (%v)", ufrag, user, err)
			}
		} else if perr == nil && len(p) >= 20 && p[0] < 4 && int(binary.BigEndian.Uint16(p[2:4]))+20 == len(p) {
			if user, err := msg.Get(stun.AttrUsername); err == nil && strings.Split(string(user), ":")[0] != "" {
				t.Fatalf("pion finds USERNAME %q, the mux none", user)
			}
		}

		st := env.stats
		before := st.dropMuxUnroutable.Load() + st.dropMuxMalformed.Load() + st.dropMuxQueueFull.Load()
		b := muxBufPool.Get().(*muxBuf)
		n := copy(b.b[:], p)
		if len(p) > len(b.b) {
			n = len(b.b) // what a read of a bigger datagram returns
		}
		queued := m.dispatch(0, b, n, from)
		after := st.dropMuxUnroutable.Load() + st.dropMuxMalformed.Load() + st.dropMuxQueueFull.Load()
		if queued == (after != before+1) {
			// queued xor counted once
		} else {
			t.Fatalf("queued %v, drops counted %d", queued, after-before)
		}
		if queued {
			if !ok || string(ufrag) != "ufragF" {
				t.Fatalf("queued a datagram with ufrag %q (%v)", ufrag, ok)
			}
			if got, _, err := hh.ReadFromAddrPort(drain); err != nil || got != len(p) {
				t.Fatalf("read back %d (%v), want %d", got, err, len(p))
			}
		} else {
			muxBufPool.Put(b)
		}
	})
}

// TestConfigUDPConns: a UDPConns socket on another address is refused,
// and New closes every socket it was given then, as with UDPConn.
func TestConfigUDPConns(t *testing.T) {
	udp, tcp := sockets(t)
	other, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{UDPConn: udp, UDPConns: []net.PacketConn{other}, TCPListener: tcp}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New with a UDPConns socket on another port: %v, want ErrInvalidConfig", err)
	}
	_ = other.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, _, err := other.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("New failed and left a UDPConns socket open: %v", err)
	}
	if !closed(udp, tcp) {
		t.Error("New failed and left UDPConn open")
	}
	udp, _ = sockets(t)
	if err := (Config{UDPConn: udp, UDPConns: []net.PacketConn{nil}}).Validate(); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate with a nil UDPConns socket: %v", err)
	}
}
