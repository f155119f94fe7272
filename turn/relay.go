package turn

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	pionturn "github.com/pion/turn/v5"
)

// relayGen is the RelayAddressGenerator of a listener: it opens relay
// sockets in the configured port range, enforces the allocation quota
// exactly, refuses TCP relays, and wraps each socket in a relayConn.
type relayGen struct {
	s   *Server
	lis *udpListener // the UDP listener it serves; nil for TCP and TLS
}

func (g *relayGen) Validate() error { return nil }

func (g *relayGen) AllocatePacketConn(conf pionturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	s := g.s
	session := sessionOf(conf.UserID)
	switch s.quota.acquire(session) {
	case quotaUser:
		s.ctr.quotaUser.Add(1)
		return nil, nil, ErrQuota
	case quotaTotal:
		s.ctr.quotaTotal.Add(1)
		return nil, nil, ErrQuota
	case quotaEnded:
		s.ctr.sessionEnded.Add(1)
		return nil, nil, ErrSessionEnded
	}
	pc, err := g.listen(conf)
	if err != nil {
		s.quota.release(session, nil)
		return nil, nil, err
	}
	s.ctr.allocationsTotal.Add(1)
	setBuffers(pc, relaySocketBuffer)
	port := 0
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		port = ua.Port
	}
	rc := &relayConn{PacketConn: newFastUDP(pc), s: s, session: session}
	if s.cfg.MaxBitrate > 0 {
		rate := float64(s.cfg.MaxBitrate) / 8
		burst := max(rate/4, 64*1024) // a quarter second, at least 64 KiB
		rc.out = newBucket(rate, burst, s.clock.now())
		rc.in = newBucket(rate, burst, s.clock.now())
	}
	if g.lis != nil && g.lis.done != nil { // the listener is on the data plane: so is its relay
		if err := s.dp.addRelay(rc, g.lis); err != nil {
			rc.PacketConn.Close()
			s.quota.release(session, nil)
			return nil, nil, err
		}
	}
	if !s.quota.attach(rc) { // EndSession ran since acquire
		s.ctr.sessionEnded.Add(1)
		rc.Close()
		return nil, nil, ErrSessionEnded
	}
	return rc, &net.UDPAddr{IP: s.cfg.RelayIP.AsSlice(), Port: port}, nil
}

// listen opens a relay socket on a random free port of the range.
func (g *relayGen) listen(conf pionturn.AllocateListenerConfig) (net.PacketConn, error) {
	cfg := &g.s.cfg
	host := cfg.RelayListenIP.String()
	lp := func(port int) (net.PacketConn, error) {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		if cfg.Net != nil {
			return cfg.Net.ListenPacket(conf.Network, addr)
		}
		var lc net.ListenConfig
		return lc.ListenPacket(context.Background(), conf.Network, addr)
	}
	if conf.RequestedPort != 0 { // EVEN-PORT / RESERVATION-TOKEN
		if cfg.RelayPortMin != 0 && (conf.RequestedPort < int(cfg.RelayPortMin) || conf.RequestedPort > int(cfg.RelayPortMax)) {
			return nil, errors.New("turn: requested port outside the relay range")
		}
		return lp(conf.RequestedPort)
	}
	if cfg.RelayPortMin == 0 {
		return lp(0)
	}
	span := int(cfg.RelayPortMax) - int(cfg.RelayPortMin) + 1
	var b [4]byte
	rand.Read(b[:])
	start := int(binary.BigEndian.Uint32(b[:]) % uint32(span))
	tries := min(span, 64)
	var lastErr error
	for i := 0; i < tries; i++ {
		port := int(cfg.RelayPortMin) + (start+i*7919)%span // a prime stride visits the range
		pc, err := lp(port)
		if err == nil {
			return pc, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("turn: no free relay port in %d-%d: %w", cfg.RelayPortMin, cfg.RelayPortMax, lastErr)
}

func (g *relayGen) AllocateListener(pionturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	g.s.ctr.tcpRelayRefused.Add(1)
	return nil, nil, ErrTCPRelay
}

func (g *relayGen) AllocateConn(pionturn.AllocateConnConfig) (net.Conn, error) {
	g.s.ctr.tcpRelayRefused.Add(1)
	return nil, ErrTCPRelay
}

// relayConn is the relay socket of one allocation. Every packet it sends
// or receives is checked against the peer policy (port included, which
// pion's permission handler cannot see) and the bandwidth limit; refused
// packets are dropped and counted.
//
// On the data plane (dataplane_linux.go) a loop reads the socket and relays
// channel traffic itself; ReadFrom then returns only what the loop queued
// for pion in slow, already checked.
type relayConn struct {
	net.PacketConn
	s       *Server
	session string  // Static: the session (sessionOf the username) it counts against.
	in, out *bucket // nil: unlimited

	dpr  dpRelay
	slow chan slowPkt  // nil: not on the data plane
	done chan struct{} // closed by Close, on the data plane

	// lastOK caches the last peer the policy allowed, IPv4 only, packed by
	// packV4 with the policy's generation, so that a change of the bridge
	// set voids it. One allocation almost always talks to one peer.
	lastOK atomic.Uint64

	closeOnce sync.Once
}

// packV4 packs an IPv4 peer and the low 15 bits of a policy generation:
// bit 63 set (zero is empty), generation in bits 48-62, address and port
// below. Anything but IPv4 packs to 0, never cached. A generation that
// wrapped to the same 15 bits between two packets of one allocation
// would take 32768 changes of the bridge set in between.
func packV4(ap netip.AddrPort, gen uint64) uint64 {
	if !ap.Addr().Is4() {
		return 0
	}
	a := ap.Addr().As4()
	return 1<<63 | (gen&0x7fff)<<48 | uint64(binary.BigEndian.Uint32(a[:]))<<16 | uint64(ap.Port())
}

func (c *relayConn) allowed(addr net.Addr) bool {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	ap := ua.AddrPort()
	return c.allowedAP(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

// allowedAP is allowed for an address with IPv4 unmapped.
func (c *relayConn) allowedAP(ap netip.AddrPort) bool {
	pol := c.s.cfg.Policy
	k := packV4(ap, pol.generation())
	if k != 0 && c.lastOK.Load() == k {
		return true
	}
	if pol.verdict(ap) != "" {
		return false
	}
	if k != 0 {
		c.lastOK.Store(k)
	}
	return true
}

// WriteTo sends a client's packet to a peer.
func (c *relayConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if !c.allowed(addr) {
		c.s.ctr.packetsDenied.Add(1)
		return len(p), nil
	}
	if !c.take(c.out, len(p)) {
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.s.ctr.relayedByPion(n)
	}
	return n, err
}

// take takes n bytes from the bandwidth bucket b (c.in or c.out; nil is
// unlimited), counting a drop when there are not enough.
func (c *relayConn) take(b *bucket, n int) bool {
	if b == nil || b.take(float64(n), c.s.clock.now()) {
		return true
	}
	c.s.ctr.bandwidthDrops.Add(1)
	return false
}

// ReadFrom receives a peer's packet for the client.
func (c *relayConn) ReadFrom(p []byte) (int, net.Addr, error) {
	if c.slow != nil {
		n, addr, err := readSlow(p, c.slow, c.done, c.LocalAddr())
		if err == nil {
			c.s.ctr.relayedByPion(n)
		}
		return n, addr, err
	}
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		if !c.allowed(addr) {
			c.s.ctr.packetsDenied.Add(1)
			continue
		}
		if !c.take(c.in, n) {
			continue
		}
		c.s.ctr.relayedByPion(n)
		return n, addr, err
	}
}

// Close closes the relay socket. Only the first call does anything and
// returns an error: pion's allocation manager stops closing allocations at
// the first error, so a socket that EndSession closed before pion deleted
// its allocation must not fail pion's Close at shutdown (the allocations
// after it in pion's map would stay open).
func (c *relayConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.done != nil {
			c.s.dp.removeRelay(c) // off its loop while the descriptor is open
			close(c.done)
		}
		err = c.PacketConn.Close()
		c.s.quota.release(c.session, c)
	})
	return err
}
