//go:build linux

package turn

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/meshmeet/meshmeet/internal/rawsock"
)

// fastUDP is a *net.UDPConn whose ReadFrom and WriteTo make their
// recvfrom and sendto system calls directly (syscall.RawSyscall6) instead
// of through the syscall package's Syscall6.
//
// Why: Syscall6 tells the scheduler a system call is starting
// (entersyscall), and when every P was idle that wakes sysmon, the
// runtime's monitor thread, which then polls every 20 µs until the
// process is idle again. A TURN server on a relayed media stream goes
// idle between almost every packet, so each packet paid a futex wake-up
// and a few nanosleeps of sysmon: 18 % of the process's CPU samples under
// the coturn comparison (docs/benchmarks.md, "TURN"). Both sockets are
// non-blocking (the net package makes them so), so the calls return at
// once and there is nothing for sysmon to do: when there is no datagram
// (EAGAIN) the goroutine parks in the netpoller as net.UDPConn's own
// ReadFrom and WriteTo do, through syscall.RawConn.
//
// Static after construction but for last (atomic); safe for concurrent use
// like net.UDPConn.
type fastUDP struct {
	*net.UDPConn
	rc  syscall.RawConn
	is6 bool // AF_INET6 socket (dual-stack: IPv4 peers as ::ffff:a.b.c.d)

	// last is the source address of the last datagram read, returned
	// again (the same immutable *net.UDPAddr) while the source does not
	// change: a relay socket hears from one peer, so this saves two
	// allocations per packet.
	last atomic.Pointer[srcAddr]
}

type srcAddr struct {
	sa syscall.RawSockaddrInet6
	ua *net.UDPAddr
}

// newFastUDP wraps pc when it is a *net.UDPConn of the operating system;
// anything else (pion vnet in tests) is returned as it is.
func newFastUDP(pc net.PacketConn) net.PacketConn {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return pc
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return pc
	}
	var domain int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		domain, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_DOMAIN)
	}); err != nil || serr != nil || (domain != syscall.AF_INET && domain != syscall.AF_INET6) {
		return pc
	}
	return &fastUDP{UDPConn: uc, rc: rc, is6: domain == syscall.AF_INET6}
}

// sysOp is one recvfrom or sendto: its arguments and results live here,
// beside closures built once, so that passing them to syscall.RawConn
// allocates nothing per packet (a closure over locals escapes to the heap:
// three allocations per call).
type sysOp struct {
	p     []byte
	sa    syscall.RawSockaddrInet6 // the source, read
	to    rawAddr                  // the destination, write
	n     int
	errno syscall.Errno
	read  func(fd uintptr) bool
	write func(fd uintptr) bool
}

var sysOps = sync.Pool{New: func() any {
	op := &sysOp{}
	op.read = op.recvfrom
	op.write = op.sendto
	return op
}}

func getOp(p []byte) *sysOp {
	op := sysOps.Get().(*sysOp)
	op.p, op.sa, op.to, op.n, op.errno = p, syscall.RawSockaddrInet6{}, rawAddr{}, 0, 0
	return op
}

func putOp(op *sysOp) {
	op.p = nil
	sysOps.Put(op)
}

func (op *sysOp) recvfrom(fd uintptr) bool {
	op.n, op.errno = recvfrom(fd, op.p, &op.sa)
	return op.errno != syscall.EAGAIN
}

func (op *sysOp) sendto(fd uintptr) bool {
	op.n, op.errno = sendto(fd, op.p, &op.to)
	return op.errno != syscall.EAGAIN
}

func (c *fastUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	op := getOp(p)
	defer putOp(op)
	err := c.rc.Read(op.read)
	if err == nil && op.errno != 0 {
		err = os.NewSyscallError("recvfrom", op.errno)
	}
	if err != nil {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
	}
	if l := c.last.Load(); l != nil && l.sa == op.sa {
		return op.n, l.ua, nil
	}
	ua := sockaddrUDP(&op.sa)
	c.last.Store(&srcAddr{sa: op.sa, ua: ua})
	return op.n, ua, nil
}

// sockaddrUDP converts a sockaddr_in or sockaddr_in6 to a new UDPAddr as
// the net package does: a 4-byte IP from AF_INET, a 16-byte IP (IPv4-mapped
// included) from AF_INET6. pion compares addresses by their bytes, so the
// form must match what net.UDPConn returns.
func sockaddrUDP(sa *syscall.RawSockaddrInet6) *net.UDPAddr {
	port := int(binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:]))
	if sa.Family == syscall.AF_INET {
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return &net.UDPAddr{IP: net.IP{sa4.Addr[0], sa4.Addr[1], sa4.Addr[2], sa4.Addr[3]}, Port: port}
	}
	ua := &net.UDPAddr{IP: make(net.IP, net.IPv6len), Port: port}
	copy(ua.IP, sa.Addr[:])
	if sa.Scope_id != 0 {
		ua.Zone = zoneName(sa.Scope_id)
	}
	return ua
}

func zoneName(idx uint32) string {
	if ifi, err := net.InterfaceByIndex(int(idx)); err == nil {
		return ifi.Name
	}
	return ""
}

func (c *fastUDP) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || ua.Zone != "" {
		return c.UDPConn.WriteTo(p, addr)
	}
	to, ok := makeRawAddr(ua.AddrPort(), c.is6)
	if !ok { // an IPv6 peer on an IPv4 socket, or a malformed address: the net package's error
		return c.UDPConn.WriteTo(p, addr)
	}
	op := getOp(p)
	defer putOp(op)
	op.to = to
	err := c.rc.Write(op.write)
	if err == nil && op.errno != 0 {
		err = os.NewSyscallError("sendto", op.errno)
	}
	if err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: err}
	}
	return op.n, nil
}

// rawAddr is a socket address ready for sendto.
type rawAddr struct {
	sa  syscall.RawSockaddrInet6 // large enough for both families
	len uintptr
}

// makeRawAddr builds ap's socket address for a socket of the given family
// (dual-stack sockets take IPv4 as IPv4-mapped). It fails for an IPv6
// address on an IPv4 socket.
func makeRawAddr(ap netip.AddrPort, is6 bool) (rawAddr, bool) {
	var ra rawAddr
	ip := ap.Addr().Unmap()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&ra.sa.Port))[:], ap.Port())
	switch {
	case ip.Is4() && !is6:
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&ra.sa))
		sa4.Family = syscall.AF_INET
		sa4.Addr = ip.As4()
		ra.len = syscall.SizeofSockaddrInet4
	case is6 && ip.IsValid():
		ra.sa.Family = syscall.AF_INET6
		ra.sa.Addr = ip.As16()
		ra.len = syscall.SizeofSockaddrInet6
	default:
		return ra, false
	}
	return ra, true
}

// sockaddrAddrPort converts a received sockaddr_in or sockaddr_in6 to the
// table's form: IPv4-mapped addresses unmapped, no zone.
func sockaddrAddrPort(sa *syscall.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	if sa.Family == syscall.AF_INET {
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
}

// recvfrom and sendto are the raw system calls on a non-blocking socket
// (see fastUDP for why raw); EAGAIN comes back as an errno.
func recvfrom(fd uintptr, p []byte, sa *syscall.RawSockaddrInet6) (int, syscall.Errno) {
	return rawsock.Recvfrom(fd, p, sa)
}

func sendto(fd uintptr, p []byte, ra *rawAddr) (int, syscall.Errno) {
	r, e := rawsock.Call6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)), 0,
		uintptr(unsafe.Pointer(&ra.sa)), ra.len)
	return int(r), e
}
