package turn

import (
	"net"
	"net/netip"
)

// slowPkt is a datagram the data plane hands to pion: a STUN message from
// a client, or a peer's datagram without a channel. Its bytes are a copy.
type slowPkt struct {
	b    []byte
	addr net.Addr
}

// enqueue hands a copy of b to pion's reader of ch; when the queue is full
// the packet is dropped and counted: the data plane never waits for pion.
func (s *Server) enqueue(ch chan slowPkt, b []byte, addr net.Addr) {
	select {
	case ch <- slowPkt{b: append([]byte(nil), b...), addr: addr}:
	default:
		s.ctr.queueDrops.Add(1)
	}
}

// readSlow returns the next packet the data plane queued, or net.ErrClosed
// once done is closed.
func readSlow(p []byte, ch chan slowPkt, done chan struct{}, local net.Addr) (int, net.Addr, error) {
	select {
	case pk := <-ch:
		return copy(p, pk.b), pk.addr, nil
	case <-done:
		return 0, nil, &net.OpError{Op: "read", Net: "udp", Source: local, Err: net.ErrClosed}
	}
}

// addrPortOf is a UDP address in the data plane's form: IPv4-mapped
// addresses unmapped, no zone. Anything else is the zero AddrPort.
func addrPortOf(a net.Addr) netip.AddrPort {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
}
