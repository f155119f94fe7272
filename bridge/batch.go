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
// holds at most maxBatch datagrams (the one that fills it queues it to be
// sent), and a round's end queues whatever is held, so a datagram never
// outlives the writer round during which it was written by more than the
// sends queued before it.
//
// No writer waits on another's system call (the forwarding path holds no
// lock while writing to the network): a filled batch goes on a short FIFO
// of batches to send, and whichever goroutine finds the sender's place
// free (sendMu.TryLock) sends everything queued, in order, until the FIFO
// is empty; a goroutine that finds it taken returns at once, since the
// sender will send its batch too. Order: batches leave in the order they
// were filled, and a DownTrack is written by one goroutine at a time, so
// the packets of one stream leave in the order they were written. When
// maxPending batches already wait (the kernel is slower than the writers),
// a datagram is dropped and counted as queue_full rather than held.

// maxBatch is the most datagrams one sendmmsg carries, and the most the
// batch holds.
const maxBatch = 64

// maxPending is the most filled batches waiting to be sent.
const maxPending = 8

// egressSock is a UDP socket the batch may send through.
type egressSock struct {
	conn  net.PacketConn
	sys   sockSys   // the socket's descriptor access (platform part)
	v6    bool      // an AF_INET6 socket: IPv4 goes as v4-mapped
	stats *counters // the bridge's: send errors count as write errors
}

// egress is the process's batch. Bridges share it: each datagram carries
// its socket, and a send groups consecutive datagrams of one socket.
type egress struct {
	// sendMu is held by the one goroutine sending; others only TryLock it.
	sendMu sync.Mutex

	// mu guards the following fields; never held during a system call.
	mu      sync.Mutex
	open    int          // writer rounds in progress
	cur     *sendBatch   // filling
	pending []*sendBatch // filled, to be sent in this order
	free    []*sendBatch // sent, for reuse
	// endWanted: a round ended while the FIFO was full, leaving datagrams
	// in cur that the sender queues when the FIFO empties.
	endWanted bool
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
	if e.cur != nil && e.cur.n > 0 {
		if len(e.pending) < maxPending {
			e.queueLocked()
		} else {
			e.endWanted = true // the sender queues it once the FIFO has room
		}
	}
	queued := len(e.pending) > 0
	e.mu.Unlock()
	if queued {
		e.send()
	}
}

// offer batches datagram p for ap through s; false: not batched (no
// round open, too big, an address the socket cannot take), the caller
// writes it itself.
func (e *egress) offer(s *egressSock, p []byte, ap netip.AddrPort) bool {
	if len(p) > slotSize || len(p) == 0 || !s.canSend(ap) {
		return false
	}
	e.mu.Lock()
	if e.open == 0 {
		e.mu.Unlock()
		return false
	}
	if e.cur == nil {
		e.cur = e.takeLocked()
	}
	queued := false
	if e.cur.n == maxBatch { // full, not queued while maxPending batches waited
		if len(e.pending) >= maxPending {
			e.mu.Unlock()
			s.stats.dropQueueFull.Add(1)
			return true
		}
		e.queueLocked()
		queued = true
	}
	e.cur.add(s, p, ap)
	e.maxHeld = max(e.maxHeld, e.heldLocked())
	if e.cur.n == maxBatch && len(e.pending) < maxPending {
		e.queueLocked()
		queued = true
	}
	e.mu.Unlock()
	if queued {
		e.send()
	}
	return true
}

// queueLocked moves the batch being filled to the FIFO and starts another.
// Called with mu held.
func (e *egress) queueLocked() {
	e.pending = append(e.pending, e.cur)
	e.cur = e.takeLocked()
}

// takeLocked returns an empty batch. Called with mu held.
func (e *egress) takeLocked() *sendBatch {
	if n := len(e.free); n > 0 {
		b := e.free[n-1]
		e.free = e.free[:n-1]
		return b
	}
	return newSendBatch() // at most maxPending+2 ever exist
}

// send sends the queued batches unless another goroutine is sending, which
// then sends them.
func (e *egress) send() {
	for e.sendMu.TryLock() {
		for {
			e.mu.Lock()
			if len(e.pending) == 0 {
				if e.endWanted && e.cur != nil && e.cur.n > 0 {
					e.queueLocked()
				}
				e.endWanted = false
			}
			if len(e.pending) == 0 {
				e.mu.Unlock()
				break
			}
			b := e.pending[0]
			copy(e.pending, e.pending[1:])
			e.pending = e.pending[:len(e.pending)-1]
			e.batches++
			e.datagrams += uint64(b.n)
			e.mu.Unlock()
			b.send()
			e.mu.Lock()
			e.free = append(e.free, b)
			e.mu.Unlock()
		}
		e.sendMu.Unlock()
		// A batch queued after the last look, while this goroutine still
		// held sendMu, found it taken: look again.
		e.mu.Lock()
		more := len(e.pending) > 0
		e.mu.Unlock()
		if !more {
			return
		}
	}
}

// held returns how many datagrams wait to be sent now and the most that
// ever waited.
func (e *egress) held() (now, most int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.heldLocked(), e.maxHeld
}

// heldLocked counts the datagrams not sent yet. Called with mu held.
func (e *egress) heldLocked() int {
	n := 0
	if e.cur != nil {
		n = e.cur.n
	}
	for _, b := range e.pending {
		n += b.n
	}
	return n
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

// sendNow writes one datagram at once, outside any batch.
func (s *egressSock) sendNow(p []byte, ap netip.AddrPort) error {
	if u, ok := s.conn.(*net.UDPConn); ok {
		_, err := u.WriteToUDPAddrPort(p, ap) // no *net.UDPAddr to allocate
		return err
	}
	_, err := s.conn.WriteTo(p, net.UDPAddrFromAddrPort(ap))
	return err
}

// batchUDPMux wraps the subscriber side's mux for batched egress when the
// bridge's socket allows it; otherwise it returns mux as is. The socket is
// kept for the thin write path (thinwrite.go).
func (b *Bridge) batchUDPMux(mux ice.UDPMux) ice.UDPMux {
	s := newEgressSock(b.cfg.UDPConn, &b.stats)
	if s == nil {
		return mux
	}
	b.egressSock = s
	return &batchMux{UDPMux: mux, sock: s, loopback: b.cfg.IncludeLoopback}
}
