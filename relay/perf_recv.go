package relay

import (
	"context"
	"sync"
)

// Receiving datagrams. quic-go keeps at most 128 received datagrams per
// connection and silently discards the next ones (6.4 ms of a 20,000
// packets/s link). So a link drains quic-go with one goroutine that does
// nothing but move each datagram into recvRing, a much deeper queue whose
// overflow is counted (DropRecvQueue); a second goroutine parses the
// datagrams and feeds the bridge, in batches.
//
// The ring holds the slices ReceiveDatagram returns (quic-go allocates
// one per datagram and never touches it again): no copy.

// recvBatch is the most datagrams the dispatcher takes per lock.
const recvBatch = 64

// recvRing is a bounded FIFO of received datagrams between a link's drain
// goroutine (push) and its dispatcher (take).
type recvRing struct {
	wake chan struct{} // capacity 1: data was pushed or the ring closed

	// mu guards the following fields.
	mu     sync.Mutex
	buf    [][]byte
	head   int
	n      int
	closed bool
}

func newRecvRing(size int) *recvRing {
	return &recvRing{wake: make(chan struct{}, 1), buf: make([][]byte, size)}
}

// push appends b; false when the ring is full or closed (b is dropped).
func (q *recvRing) push(b []byte) bool {
	q.mu.Lock()
	if q.closed || q.n == len(q.buf) {
		q.mu.Unlock()
		return false
	}
	i := q.head + q.n
	if i >= len(q.buf) {
		i -= len(q.buf)
	}
	q.buf[i] = b
	q.n++
	wasEmpty := q.n == 1
	q.mu.Unlock()
	if wasEmpty {
		// The dispatcher sleeps only on an empty ring.
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// take moves up to len(dst) datagrams into dst, waiting for at least
// one; ok is false when ctx ended or the ring closed.
func (q *recvRing) take(ctx context.Context, dst [][]byte) (k int, ok bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return 0, false
		}
		if q.n > 0 {
			for k < len(dst) && q.n > 0 {
				dst[k] = q.buf[q.head]
				q.buf[q.head] = nil
				q.head++
				if q.head == len(q.buf) {
					q.head = 0
				}
				q.n--
				k++
			}
			q.mu.Unlock()
			return k, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, false
		case <-q.wake:
		}
	}
}

func (q *recvRing) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// receiveDatagrams runs the link's receive side until the connection
// ends: this goroutine drains quic-go, a second one dispatches.
func (l *link) receiveDatagrams() {
	q := newRecvRing(l.r.cfg.SendQueue)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.dispatchDatagrams(q)
	}()
	l.drainDatagrams(q)
	q.close()
	<-done
}

// drainDatagrams moves datagrams from quic-go into q and does nothing
// else, so that quic-go's 128-deep queue does not fill while the process
// has CPU.
func (l *link) drainDatagrams(q *recvRing) {
	ctr := &l.r.ctr
	for {
		b, err := l.conn.ReceiveDatagram(l.ctx)
		if err != nil {
			return
		}
		ctr.datagramsIn.Add(1)
		ctr.bytesIn.Add(uint64(len(b)))
		l.bytesIn.Add(uint64(len(b)))
		if !q.push(b) {
			ctr.drop(DropRecvQueue)
		}
	}
}

// dispatchDatagrams parses the datagrams in q and hands each to its
// imported track.
func (l *link) dispatchDatagrams(q *recvRing) {
	var batch [recvBatch][]byte
	for {
		k, ok := q.take(l.ctx, batch[:])
		if !ok {
			return
		}
		for i := range k {
			l.dispatch(batch[i])
			batch[i] = nil
		}
	}
}

// dispatch parses one datagram and feeds it to its imported track.
func (l *link) dispatch(b []byte) {
	ctr := &l.r.ctr
	var h FrameHeader
	n, err := h.Unmarshal(b)
	if err != nil {
		ctr.drop(DropMalformed)
		return
	}
	if len(b)-n < 12 {
		ctr.drop(DropMalformed) // shorter than an RTP header
		return
	}
	if len(b)-n > MaxRTPSize {
		ctr.drop(DropTooLarge)
		return
	}
	imp := (*l.imports.Load())[h.Track]
	if imp == nil {
		ctr.drop(DropUnknownTrack)
		return
	}
	imp.write(l, int(h.Layer), b[n:])
}
