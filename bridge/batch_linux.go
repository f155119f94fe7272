//go:build linux

package bridge

import (
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/meshmeet/meshmeet/internal/rawsock"
)

// sockSys is a socket's descriptor access.
type sockSys struct{ raw syscall.RawConn }

// newEgressSock returns the batch's view of conn, or nil when conn is not a
// UDP socket the batch can send through.
func newEgressSock(conn net.PacketConn, stats *counters) *egressSock {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	domain, typ := -1, -1
	cerr := raw.Control(func(fd uintptr) {
		domain, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		typ, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TYPE)
	})
	if cerr != nil || typ != unix.SOCK_DGRAM || (domain != unix.AF_INET && domain != unix.AF_INET6) {
		return nil
	}
	return &egressSock{conn: conn, sys: sockSys{raw: raw}, v6: domain == unix.AF_INET6, stats: stats}
}

// canSend reports whether the socket can take ap in a batch: an IPv4
// socket IPv4 addresses only; no zones.
func (s *egressSock) canSend(ap netip.AddrPort) bool {
	a := ap.Addr()
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	return s.v6 || a.Is4() || a.Is4In6()
}

// mmsghdr is struct mmsghdr of sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// sendBatch is datagrams ready for one sendmmsg per socket: copies of the
// payloads, their addresses, and the kernel's message headers pointing at
// them (set once: the arrays never move).
type sendBatch struct {
	n    int
	sock [maxBatch]*egressSock
	buf  [maxBatch * slotSize]byte
	sa   [maxBatch]unix.RawSockaddrInet6 // or a RawSockaddrInet4 in its first bytes
	iov  [maxBatch]unix.Iovec
	hdr  [maxBatch]mmsghdr

	// The current sendmmsg call, for write (run by RawConn.Write).
	from, to, sent int
	errno          syscall.Errno
	fn             func(uintptr) bool
}

func newSendBatch() *sendBatch {
	b := &sendBatch{}
	for i := range b.hdr {
		b.iov[i].Base = &b.buf[i*slotSize]
		h := &b.hdr[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.sa[i]))
		h.Iov = &b.iov[i]
		h.SetIovlen(1)
	}
	b.fn = b.write
	return b
}

// add copies p, for ap through s, into the next slot.
func (b *sendBatch) add(s *egressSock, p []byte, ap netip.AddrPort) {
	i := b.n
	copy(b.buf[i*slotSize:], p)
	b.iov[i].SetLen(len(p))
	b.sock[i] = s
	b.hdr[i].hdr.Namelen = putSockaddr(&b.sa[i], s.v6, ap)
	b.n++
}

// putSockaddr writes ap into sa as a socket of the family v6 takes it (an
// AF_INET6 socket takes IPv4 as v4-mapped; the caller has checked that an
// AF_INET one gets IPv4) and returns its length. No zone: callers check.
func putSockaddr(sa *unix.RawSockaddrInet6, v6 bool, ap netip.AddrPort) uint32 {
	port := ap.Port()
	a := ap.Addr()
	if v6 {
		*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		pp := (*[2]byte)(unsafe.Pointer(&sa.Port))
		pp[0], pp[1] = byte(port>>8), byte(port)
		return unix.SizeofSockaddrInet6
	}
	sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
	*sa4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: a.Unmap().As4()}
	pp := (*[2]byte)(unsafe.Pointer(&sa4.Port))
	pp[0], pp[1] = byte(port>>8), byte(port)
	return unix.SizeofSockaddrInet4
}

// send sends every datagram, one sendmmsg (or more, when the kernel takes
// fewer) per run of one socket, and empties the batch. A datagram the
// kernel refuses is skipped and counted as a write error.
func (b *sendBatch) send() {
	for i := 0; i < b.n; {
		j := i + 1
		for j < b.n && b.sock[j] == b.sock[i] {
			j++
		}
		b.sendRun(i, j)
		i = j
	}
	for i := 0; i < b.n; i++ {
		b.sock[i] = nil
	}
	b.n = 0
}

func (b *sendBatch) sendRun(i, j int) {
	s := b.sock[i]
	for i < j {
		b.from, b.to, b.sent, b.errno = i, j, 0, 0
		if err := s.sys.raw.Write(b.fn); err != nil {
			s.stats.dropWriteError.Add(uint64(j - i)) // the socket is closed
			return
		}
		if b.sent == 0 {
			s.stats.dropWriteError.Add(1) // b.errno: skip the datagram
			i++
			continue
		}
		i += b.sent
	}
}

// write is the RawConn.Write callback: one sendmmsg of datagrams from..to.
// It returns false to wait until the socket is writable again.
func (b *sendBatch) write(fd uintptr) bool {
	r, e := rawsock.Call6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdr[b.from])), uintptr(b.to-b.from), 0, 0, 0)
	switch e {
	case unix.EAGAIN:
		return false
	case 0:
		b.sent = int(r)
	default:
		b.errno = e
	}
	return true
}
