package turn

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Kinds of datagrams from a client (clientDatagram).
const (
	dgramMalformed = iota // neither: dropped, counted
	dgramSTUN             // a STUN message: pion's
	dgramChannel          // ChannelData (RFC 8656 section 12.4)
)

// clientDatagram classifies a datagram b from a client. For ChannelData it
// returns the channel number and the payload, a subslice of b (bytes past
// the length are UDP padding and ignored); a ChannelData whose length runs
// past the datagram is malformed.
func clientDatagram(b []byte) (kind int, num uint16, payload []byte) {
	switch {
	case len(b) >= 4 && b[0]&0xC0 == 0x40:
		ln := int(binary.BigEndian.Uint16(b[2:4]))
		if 4+ln > len(b) {
			return dgramMalformed, 0, nil
		}
		return dgramChannel, binary.BigEndian.Uint16(b[0:2]), b[4 : 4+ln]
	case len(b) > 0 && b[0] < 0x40:
		return dgramSTUN, 0, nil
	}
	return dgramMalformed, 0, nil
}

// putChannelHeader writes the ChannelData header of channel num for a
// payload of n bytes (at most 65535) into b[0:4].
func putChannelHeader(b []byte, num uint16, n int) {
	binary.BigEndian.PutUint16(b[0:2], num)
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
}

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
