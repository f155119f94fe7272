//go:build linux

package bridge

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/meshmeet/meshmeet/internal/rawsock"
)

// rawUDP is the bridge's media socket as the ICE mux reads it: the reads
// are recvfrom system calls made without telling the Go scheduler
// (RawSyscall), through the socket's RawConn so that an empty socket
// still parks the reader in the netpoller.
//
// Why: the runtime's sysmon thread sleeps while every P is idle and is
// woken by the next system call that enters the scheduler's syscall state
// (entersyscall), after which it polls every 20 µs for at least a
// millisecond. A bridge is idle between packets most of the time, and the
// first thing it does when a packet arrives is read it: each arrival woke
// sysmon into a burst of ~50 wake-ups, each a context switch on the
// node's core (11–17 % of a pinned node's CPU in the audio fan-out
// profile, docs/benchmarks.md "Write path"). recvfrom on a non-blocking
// socket returns at once (a datagram or EAGAIN), so holding the P through
// it costs nothing; the batched sendmmsg (batch_linux.go) is raw for the
// same reason, and so are the writes outside a batch (RTCP, STUN, DTLS:
// some hundred per second on a node with 50 subscribers, each of which
// woke sysmon the same way).
type rawUDP struct {
	*net.UDPConn
	rc syscall.RawConn
	v6 bool // an AF_INET6 socket: IPv4 goes as v4-mapped

	// The mux has one reader goroutine; mu only guards rd against a
	// second one.
	mu sync.Mutex
	rd rawRead
}

// rawRead is one recvfrom call's state, kept so that the RawConn.Read
// callback (fn, bound once) allocates nothing per packet.
type rawRead struct {
	buf   []byte
	sa    syscall.RawSockaddrInet6 // or a RawSockaddrInet4 at its start
	n     int
	errno syscall.Errno
	fn    func(uintptr) bool
}

// rawUDPConn wraps c when it is a UDP socket; anything else is returned
// as is.
func rawUDPConn(c net.PacketConn) net.PacketConn {
	uc, ok := c.(*net.UDPConn)
	if !ok {
		return c
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return c
	}
	dontFragment(rc)
	domain := -1
	_ = rc.Control(func(fd uintptr) {
		domain, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	})
	if domain != unix.AF_INET && domain != unix.AF_INET6 {
		return c
	}
	r := &rawUDP{UDPConn: uc, rc: rc, v6: domain == unix.AF_INET6}
	r.rd.fn = r.rd.recv
	return r
}

// rawWrite is one sendto call's state, taken from rawWrites so that
// writers, which may be many goroutines at once, share no lock and
// allocate nothing per packet.
type rawWrite struct {
	buf   []byte
	sa    unix.RawSockaddrInet6 // or a RawSockaddrInet4 at its start
	salen uint32
	n     int
	errno syscall.Errno
	fn    func(uintptr) bool
}

var rawWrites = sync.Pool{New: func() any {
	w := &rawWrite{}
	w.fn = w.send
	return w
}}

// send is the RawConn.Write callback: false waits for the socket to be
// writable.
func (w *rawWrite) send(fd uintptr) bool {
	r, e := rawsock.Call6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(w.buf))), uintptr(len(w.buf)), 0,
		uintptr(unsafe.Pointer(&w.sa)), uintptr(w.salen))
	switch e {
	case unix.EAGAIN:
		return false
	case 0:
		w.n, w.errno = int(r), 0
	default:
		w.n, w.errno = 0, e
	}
	return true
}

// dontFragment sets the don't-fragment bit on everything the socket
// sends, without path-MTU bookkeeping (IP_PMTUDISC_PROBE, as QUIC stacks
// do). Media datagrams are at most about 1,200 bytes, so none is ever
// refused for its size here; what it saves is the kernel's choice of a
// unique IPv4 ID per datagram (__ip_select_ident, a hash and a shared
// atomic), which it makes for every datagram that may be fragmented:
// 2.7 % of the node's CPU in the livestream profile. Errors are ignored
// (the socket works as before).
func dontFragment(rc syscall.RawConn) {
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
		_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_PROBE)
	})
}

// recv is the RawConn.Read callback: false waits for the socket to be
// readable.
func (r *rawRead) recv(fd uintptr) bool {
	n, e := rawsock.Recvfrom(fd, r.buf, &r.sa)
	switch e {
	case unix.EAGAIN:
		return false
	case 0:
		r.n, r.errno = n, 0
	default:
		r.n, r.errno = 0, e
	}
	return true
}

// addrPort is the sender's address from the last recvfrom.
func (r *rawRead) addrPort() netip.AddrPort {
	switch r.sa.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		pp := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(pp[0])<<8|uint16(pp[1]))
	case unix.AF_INET6:
		sa := &r.sa
		pp := (*[2]byte)(unsafe.Pointer(&sa.Port))
		// As net.UDPConn gives it: a v4-mapped address stays mapped; a
		// scoped (link-local) one carries its interface index as zone.
		a := netip.AddrFrom16(sa.Addr)
		if sa.Scope_id != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(sa.Scope_id), 10))
		}
		return netip.AddrPortFrom(a, uint16(pp[0])<<8|uint16(pp[1]))
	}
	return netip.AddrPort{}
}

// ReadFromAddrPort implements ice.AddrPortReaderWriter.
func (r *rawUDP) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rd.buf = b
	err := r.rc.Read(r.rd.fn)
	r.rd.buf = nil
	if err != nil {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: r.LocalAddr(), Err: err}
	}
	if r.rd.errno != 0 {
		return 0, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: r.LocalAddr(), Err: r.rd.errno}
	}
	return r.rd.n, r.rd.addrPort(), nil
}

// ReadFrom implements net.PacketConn through ReadFromAddrPort.
func (r *rawUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	n, ap, err := r.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(ap), nil
}

// WriteToAddrPort implements ice.AddrPortReaderWriter: a raw sendto. An
// address the socket cannot take as is (zoned, or IPv6 on an IPv4
// socket) goes the ordinary way, which says why it fails or resolves the
// zone.
func (r *rawUDP) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	a := addr.Addr()
	if !a.IsValid() || a.Zone() != "" || (!r.v6 && !a.Unmap().Is4()) {
		return r.UDPConn.WriteToUDPAddrPort(b, addr)
	}
	w := rawWrites.Get().(*rawWrite)
	w.buf = b
	w.salen = putSockaddr(&w.sa, r.v6, addr)
	err := r.rc.Write(w.fn)
	n, errno := w.n, w.errno
	w.buf = nil
	rawWrites.Put(w)
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: r.LocalAddr(), Addr: net.UDPAddrFromAddrPort(addr), Err: err}
	}
	return n, nil
}

// WriteToUDPAddrPort is WriteToAddrPort, for callers that know the
// socket as a *net.UDPConn's method set.
func (r *rawUDP) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return r.WriteToAddrPort(b, addr)
}

// WriteTo implements net.PacketConn through WriteToAddrPort.
func (r *rawUDP) WriteTo(b []byte, addr net.Addr) (int, error) {
	if u, ok := addr.(*net.UDPAddr); ok {
		if ap := u.AddrPort(); ap.IsValid() && u.Zone == "" {
			return r.WriteToAddrPort(b, ap)
		}
	}
	return r.UDPConn.WriteTo(b, addr)
}
