//go:build linux

package turn

import (
	"encoding/binary"
	"net"
	"os"
	"syscall"
	"unsafe"
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
// Static after construction; safe for concurrent use like net.UDPConn.
type fastUDP struct {
	*net.UDPConn
	rc  syscall.RawConn
	is6 bool // AF_INET6 socket (dual-stack: IPv4 peers as ::ffff:a.b.c.d)
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

func (c *fastUDP) ReadFrom(p []byte) (int, net.Addr, error) {
	var (
		sa    syscall.RawSockaddrInet6 // large enough for both families
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			salen := uint32(unsafe.Sizeof(sa))
			var bp unsafe.Pointer
			if len(p) > 0 {
				bp = unsafe.Pointer(&p[0])
			}
			r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(bp), uintptr(len(p)), 0,
				uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&salen)))
			if e == syscall.EINTR {
				continue
			}
			n, errno = int(r), e
			return e != syscall.EAGAIN
		}
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("recvfrom", errno)
	}
	if err != nil {
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
	}
	return n, sockaddrUDP(&sa), nil
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
	var (
		sa    syscall.RawSockaddrInet6
		salen uintptr
	)
	ip4 := ua.IP.To4()
	port := (*[2]byte)(unsafe.Pointer(&sa.Port))
	binary.BigEndian.PutUint16(port[:], uint16(ua.Port))
	switch {
	case ip4 != nil && !c.is6:
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(&sa))
		sa4.Family = syscall.AF_INET
		copy(sa4.Addr[:], ip4)
		salen = syscall.SizeofSockaddrInet4
	case c.is6 && (ip4 != nil || len(ua.IP) == net.IPv6len):
		sa.Family = syscall.AF_INET6
		copy(sa.Addr[:], ua.IP.To16())
		salen = syscall.SizeofSockaddrInet6
	default: // an IPv6 peer on an IPv4 socket, or a malformed address: the net package's error
		return c.UDPConn.WriteTo(p, addr)
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		for {
			var bp unsafe.Pointer
			if len(p) > 0 {
				bp = unsafe.Pointer(&p[0])
			}
			r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(bp), uintptr(len(p)), 0,
				uintptr(unsafe.Pointer(&sa)), salen)
			if e == syscall.EINTR {
				continue
			}
			n, errno = int(r), e
			return e != syscall.EAGAIN
		}
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("sendto", errno)
	}
	if err != nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: err}
	}
	return n, nil
}
