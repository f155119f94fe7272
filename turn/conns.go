package turn

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
)

// STUN framing constants (RFC 8489 section 5, RFC 8656 section 12).
const (
	stunHeaderSize   = 20
	stunMagicCookie  = 0x2112A442
	typeAllocateReq  = 0x0003 // Allocate request
	typeAllocateOK   = 0x0103 // Allocate success response
	typeBindingOK    = 0x0101 // Binding success response
	attrReqTransport = 0x0019 // REQUESTED-TRANSPORT
	protoTCP         = 6
)

// isTCPAllocate reports whether b is an Allocate request asking for a TCP
// relay (REQUESTED-TRANSPORT = 6, RFC 6062).
func isTCPAllocate(b []byte) bool {
	if len(b) < stunHeaderSize || binary.BigEndian.Uint16(b[0:2]) != typeAllocateReq ||
		binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return false
	}
	v, ok := findAttr(b, attrReqTransport)
	return ok && len(v) >= 1 && v[0] == protoTCP
}

// Kinds of server answers, for the per-source limit (answerKind).
const (
	answerFree    = iota // not limited: success answers to authenticated requests, indications
	answerError          // an error response (401 and every other code)
	answerBinding        // a Binding success response
)

// answerKind classifies the STUN message b that the server is about to
// send. Error responses and Binding answers are what an unauthenticated
// source can get from the server, so they are the ones limited per source.
func answerKind(b []byte) int {
	if len(b) < stunHeaderSize || b[0] >= 0x40 || binary.BigEndian.Uint32(b[4:8]) != stunMagicCookie {
		return answerFree
	}
	t := binary.BigEndian.Uint16(b[0:2])
	switch {
	case t&0x0110 == 0x0110: // class bits: error response
		return answerError
	case t == typeBindingOK:
		return answerBinding
	}
	return answerFree
}

// findAttr returns the value of the first attribute of type t in the STUN
// message b.
func findAttr(b []byte, t uint16) ([]byte, bool) {
	end := stunHeaderSize + int(binary.BigEndian.Uint16(b[2:4]))
	if end > len(b) {
		return nil, false
	}
	for i := stunHeaderSize; i+4 <= end; {
		at := binary.BigEndian.Uint16(b[i : i+2])
		l := int(binary.BigEndian.Uint16(b[i+2 : i+4]))
		if i+4+l > end {
			return nil, false
		}
		if at == t {
			return b[i+4 : i+4+l], true
		}
		i += 4 + (l+3)&^3
	}
	return nil, false
}

// tcpRefusal builds the 442 answer to the TCP Allocate request req.
func tcpRefusal(req []byte) []byte {
	var tid [stun.TransactionIDSize]byte
	copy(tid[:], req[8:20])
	m, err := stun.Build(stun.NewTransactionIDSetter(tid),
		stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse),
		stun.ErrorCodeAttribute{Code: stun.CodeUnsupportedTransProto, Reason: []byte("TCP relay (RFC 6062) is not offered; use UDP relay")},
		stun.Fingerprint)
	if err != nil {
		return nil
	}
	return m.Raw
}

func addrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// allowAnswer reports whether a server answer b to src may be sent: error
// answers (401 first of all) and Binding answers share one budget per
// source (an IPv4 address or an IPv6 /64), so that a spoofed source gets
// at most UnauthRate answers a second, ~2 KB/s at the default.
func (s *Server) allowAnswer(b []byte, src net.Addr) bool {
	kind := answerKind(b)
	if kind == answerFree || s.unauth.allow(addrIP(src), s.clock.now()) {
		return true
	}
	if kind == answerBinding {
		s.ctr.bindingLimited.Add(1)
	} else {
		s.ctr.unauthLimited.Add(1)
	}
	return false
}

// udpListener wraps a TURN/UDP listening socket: it refuses TCP Allocate
// requests with 442 before pion sees them and drops 401 answers over the
// per-source rate. On the data plane (dataplane_linux.go) a loop reads the
// socket and relays ChannelData itself; ReadFrom then returns the STUN
// messages the loop queued for pion in slow.
type udpListener struct {
	net.PacketConn
	s *Server

	dpl  dpListener
	slow chan slowPkt  // nil: not on the data plane
	done chan struct{} // closed by Close, on the data plane

	closeOnce sync.Once
}

func (l *udpListener) read(p []byte) (int, net.Addr, error) {
	if l.slow != nil {
		return readSlow(p, l.slow, l.done, l.LocalAddr())
	}
	return l.PacketConn.ReadFrom(p)
}

func (l *udpListener) Close() error {
	l.closeOnce.Do(func() {
		if l.done != nil {
			l.s.dp.removeListener(l)
			close(l.done)
		}
	})
	return l.PacketConn.Close()
}

func (l *udpListener) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := l.read(p)
		if err != nil || n == 0 || p[0] >= 0x40 || !isTCPAllocate(p[:n]) {
			return n, addr, err
		}
		l.s.ctr.tcpRelayRefused.Add(1)
		if ans := tcpRefusal(p[:n]); ans != nil && l.s.allowAnswer(ans, addr) {
			l.PacketConn.WriteTo(ans, addr)
		}
	}
}

func (l *udpListener) WriteTo(p []byte, addr net.Addr) (int, error) {
	if len(p) > 0 && p[0] < 0x40 && !l.s.allowAnswer(p, addr) {
		return len(p), nil
	}
	return l.PacketConn.WriteTo(p, addr)
}

// tcpListener wraps a TURN/TCP or TURN/TLS listener: it caps the number of
// connections, and its connections frame the stream to do what udpListener
// does.
type tcpListener struct {
	net.Listener
	s *Server
}

func (l *tcpListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc := &tcpConn{Conn: c, s: l.s, accepted: time.Now()}
		if !l.s.addTCPConn(tc) {
			l.s.ctr.tcpConnsLimited.Add(1)
			c.Close()
			continue
		}
		return tc, nil
	}
}

func (s *Server) addTCPConn(c *tcpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.tcp) >= s.cfg.MaxTCPConns {
		return false
	}
	s.tcp[c] = struct{}{}
	return true
}

func (s *Server) closeTCPConns() {
	s.mu.Lock()
	conns := make([]*tcpConn, 0, len(s.tcp))
	for c := range s.tcp {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// TCP connection deadlines. They are absolute times from fixed points,
// never moved by a byte that arrives, so that a client dripping bytes holds
// a connection no longer than one who sends nothing:
//   - setup: until the server has answered an Allocate with success on the
//     connection, the whole connection — TLS handshake, 401 round trip,
//     Allocate — must fit in tcpSetupTimeout from accept;
//   - frame: after that, each frame must be complete tcpFrameTimeout after
//     its first byte arrived;
//   - idle: and the next frame must start within tcpIdleTimeout of the end
//     of the last one (an allocation lifetime plus a minute: a connection
//     silent for longer has nothing left to do).
const (
	tcpSetupTimeout = 10 * time.Second
	tcpFrameTimeout = 10 * time.Second
	tcpIdleTimeout  = 11 * time.Minute
	tcpWriteTimeout = 5 * time.Second
)

// tcpTimeouts are the deadlines above; tests shorten them.
type tcpTimeouts struct {
	setup, frame, idle time.Duration
}

// tcpConn is one TURN/TCP or TURN/TLS connection. Read returns whole TURN
// frames (STUN messages or padded ChannelData, RFC 8656 section 12.5),
// answering TCP Allocate requests itself.
type tcpConn struct {
	net.Conn
	s        *Server
	accepted time.Time // Static.

	// established is set by Write when the server answers an Allocate with
	// success: the setup deadline no longer applies.
	established atomic.Bool

	buf        []byte    // Owned by the reading goroutine: bytes read, not yet returned.
	frameStart time.Time // Owned by the reading goroutine: when the first byte of buf arrived.
	lastFrame  time.Time // Owned by the reading goroutine: when the last whole frame was returned.

	closeOnce sync.Once
}

var errFrame = errors.New("turn: bad TURN frame on TCP")

// frameLen returns the length of the TURN frame at the start of b, or 0 if
// more bytes are needed.
func frameLen(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, nil
	}
	l := int(binary.BigEndian.Uint16(b[2:4]))
	switch {
	case b[0] < 0x40:
		return stunHeaderSize + l, nil
	case b[0] < 0x80:
		return 4 + (l+3)&^3, nil
	}
	return 0, errFrame
}

// deadline is when the frame being read must be complete.
func (c *tcpConn) deadline() time.Time {
	t := c.s.tcpTimeouts
	switch {
	case !c.established.Load():
		return c.accepted.Add(t.setup)
	case len(c.buf) > 0:
		return c.frameStart.Add(t.frame)
	}
	return c.lastFrame.Add(t.idle)
}

func (c *tcpConn) Read(p []byte) (int, error) {
	for {
		n, err := frameLen(c.buf)
		if err != nil {
			return 0, err
		}
		if n > 0 && len(c.buf) >= n {
			frame := c.buf[:n]
			if isTCPAllocate(frame) {
				c.s.ctr.tcpRelayRefused.Add(1)
				if ans := tcpRefusal(frame); ans != nil {
					c.Conn.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
					c.Conn.Write(ans)
				}
				c.consume(n)
				continue
			}
			if n > len(p) {
				return 0, errFrame // larger than pion's MTU: pion drops it too
			}
			copy(p, frame)
			c.consume(n)
			return n, nil
		}
		c.Conn.SetReadDeadline(c.deadline())
		var tmp [4096]byte
		m, err := c.Conn.Read(tmp[:])
		if m > 0 {
			if len(c.buf) == 0 {
				c.frameStart = time.Now()
			}
			c.buf = append(c.buf, tmp[:m]...)
			if len(c.buf) > 1<<17 {
				return 0, errFrame
			}
		}
		if err != nil && m == 0 {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				c.s.ctr.tcpTimeouts.Add(1)
			}
			return 0, err
		}
	}
}

// consume drops the frame of n bytes at the start of buf. The bytes left
// (the start of the next frame) arrived with the last read.
func (c *tcpConn) consume(n int) {
	c.buf = c.buf[n:]
	if len(c.buf) == 0 {
		c.buf = nil
	}
	c.lastFrame = time.Now()
	if len(c.buf) > 0 {
		c.frameStart = c.lastFrame
	}
}

func (c *tcpConn) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] < 0x40 && !c.s.allowAnswer(p, c.RemoteAddr()) {
		return len(p), nil
	}
	if len(p) >= 2 && binary.BigEndian.Uint16(p[0:2]) == typeAllocateOK && c.established.CompareAndSwap(false, true) {
		// The reader may be waiting under the setup deadline; move it to
		// the idle one (the reader applies the frame deadline from its
		// next read on).
		c.Conn.SetReadDeadline(time.Now().Add(c.s.tcpTimeouts.idle))
	}
	c.Conn.SetWriteDeadline(time.Now().Add(tcpWriteTimeout))
	return c.Conn.Write(p)
}

func (c *tcpConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.s.mu.Lock()
		delete(c.s.tcp, c)
		c.s.mu.Unlock()
	})
	return err
}
