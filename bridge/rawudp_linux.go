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
// same reason. Writes outside a batch (RTCP, STUN, DTLS) keep the
// ordinary path.
type rawUDP struct {
	*net.UDPConn
	rc syscall.RawConn

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
	r := &rawUDP{UDPConn: uc, rc: rc}
	r.rd.fn = r.rd.recv
	return r
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

// WriteToAddrPort implements ice.AddrPortReaderWriter (the ordinary
// write: pion's mux uses the AddrPort pair together).
func (r *rawUDP) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return r.UDPConn.WriteToUDPAddrPort(b, addr)
}
