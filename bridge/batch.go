package bridge

import (
	"net"
	"net/netip"
	"sync"

	"github.com/pion/ice/v4"
)

// Batched egress: forwarded RTP leaves through sendmmsg, many datagrams
// per system call, instead of one sendto per packet.
//
// The subscriber PeerConnections' ICE conns are wrapped (batchMux,
// batchConn): a datagram that is RTP (RFC 7983: first byte 128–191, not an
// RTCP packet type) written while a writer round is open (egress.begin …
// egress.end, around a DownTrack writer's drain) is copied into the
// process's batch instead of being sent; everything else (STUN, DTLS,
// SRTCP, RTP outside a round) is written at once as before.
//
// The bound on the delay is by construction, not by a timer: the batch
// holds at most maxBatch datagrams (the one that fills it sends it), and a
// round's end sends whatever is held, so a datagram never outlives the
// writer round during which it was written. Order: batches are taken and
// sent under sendMu, in the order they were filled, and a DownTrack is
// written by one goroutine at a time, so the packets of one stream leave in
// the order they were written.

// maxBatch is the most datagrams one sendmmsg carries, and the most the
// batch holds.
const maxBatch = 64

// egressSock is a UDP socket the batch may send through.
type egressSock struct {
	sys   sockSys   // the socket's descriptor access (platform part)
	v6    bool      // an AF_INET6 socket: IPv4 goes as v4-mapped
	stats *counters // the bridge's: send errors count as write errors
}

// egress is the process's batch. Bridges share it: each datagram carries
// its socket, and a send groups consecutive datagrams of one socket.
type egress struct {
	sendMu sync.Mutex // held while a batch is taken and sent

	// mu guards the following fields; never held during a system call.
	mu    sync.Mutex
	open  int        // writer rounds in progress
	cur   *sendBatch // filling
	spare *sendBatch // the other one (taken only under sendMu)
	// Counters for tests and figures.
	batches, datagrams uint64
	maxHeld            int // the most datagrams ever held at once
}

var out egress

// begin opens a writer round: until its end, RTP written through a
// batchConn is batched.
func (e *egress) begin() {
	e.mu.Lock()
	e.open++
	e.mu.Unlock()
}

// end closes a writer round and sends what the batch holds.
func (e *egress) end() {
	e.mu.Lock()
	e.open--
	n := 0
	if e.cur != nil {
		n = e.cur.n
	}
	e.mu.Unlock()
	if n > 0 {
		e.flush()
	}
}

// offer batches datagram p for ap through s; false: not batched (no
// round open, too big, an address the socket cannot take), the caller
// writes it itself.
func (e *egress) offer(s *egressSock, p []byte, ap netip.AddrPort) bool {
	if len(p) > slotSize || len(p) == 0 || !s.canSend(ap) {
		return false
	}
	for {
		e.mu.Lock()
		if e.open == 0 {
			e.mu.Unlock()
			return false
		}
		if e.cur == nil {
			e.cur, e.spare = newSendBatch(), newSendBatch()
		}
		if b := e.cur; b.n < maxBatch {
			b.add(s, p, ap)
			e.maxHeld = max(e.maxHeld, b.n)
			full := b.n == maxBatch
			e.mu.Unlock()
			if full {
				e.flush()
			}
			return true
		}
		e.mu.Unlock()
		e.flush() // full: another writer is about to send it, or we do
	}
}

// flush sends what the batch holds. Batches are taken and sent under
// sendMu, so they leave in the order they were filled, and the spare is
// never still being sent when it becomes the batch being filled.
func (e *egress) flush() {
	e.sendMu.Lock()
	defer e.sendMu.Unlock()
	e.mu.Lock()
	b := e.cur
	if b == nil || b.n == 0 {
		e.mu.Unlock()
		return
	}
	e.cur, e.spare = e.spare, b
	e.batches++
	e.datagrams += uint64(b.n)
	e.mu.Unlock()
	b.send()
}

// held returns how many datagrams the batch holds now and the most it ever
// held.
func (e *egress) held() (now, most int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil {
		now = e.cur.n
	}
	return now, e.maxHeld
}

// isRTP reports whether p is an RTP packet (not RTCP, STUN or DTLS).
func isRTP(p []byte) bool {
	return len(p) >= 12 && p[0]&0xc0 == 0x80 && (p[1] < 192 || p[1] > 223)
}

// batchMux hands out batchConns: the subscriber side's UDP mux.
type batchMux struct {
	ice.UDPMux
	sock     *egressSock
	loopback bool // Config.IncludeLoopback
}

// GetListenAddresses drops loopback addresses unless the bridge includes
// them: pion does that itself for its own mux type only, not for a
// wrapper.
func (m *batchMux) GetListenAddresses() []net.Addr {
	addrs := m.UDPMux.GetListenAddresses()
	if m.loopback {
		return addrs
	}
	var keep []net.Addr
	for _, a := range addrs {
		if u, ok := a.(*net.UDPAddr); ok && u.IP.IsLoopback() {
			continue
		}
		keep = append(keep, a)
	}
	return keep
}

// GetConn wraps the mux's conn for ufrag.
func (m *batchMux) GetConn(ufrag string, addr net.Addr) (net.PacketConn, error) {
	c, err := m.UDPMux.GetConn(ufrag, addr)
	if err != nil {
		return c, err
	}
	ap, ok := c.(ice.AddrPortReaderWriter)
	if !ok {
		return c, nil
	}
	return &batchConn{PacketConn: c, ap: ap, sock: m.sock}, nil
}

// batchConn is one ICE agent's conn on the mux; its RTP writes within a
// writer round go to the batch.
type batchConn struct {
	net.PacketConn
	ap   ice.AddrPortReaderWriter
	sock *egressSock
}

// ReadFromAddrPort implements ice.AddrPortReaderWriter.
func (c *batchConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	return c.ap.ReadFromAddrPort(b)
}

// WriteToAddrPort implements ice.AddrPortReaderWriter: RTP within a round
// is batched, the rest written now.
func (c *batchConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if isRTP(b) && out.offer(c.sock, b, addr) {
		return len(b), nil
	}
	return c.ap.WriteToAddrPort(b, addr)
}

// batchUDPMux wraps the subscriber side's mux for batched egress when the
// bridge's socket allows it; otherwise it returns mux as is.
func (b *Bridge) batchUDPMux(mux ice.UDPMux) ice.UDPMux {
	s := newEgressSock(b.cfg.UDPConn, &b.stats)
	if s == nil {
		return mux
	}
	return &batchMux{UDPMux: mux, sock: s, loopback: b.cfg.IncludeLoopback}
}
