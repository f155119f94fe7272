package relay

import (
	"context"
	"sync"
)

// sendQueue is a link's bounded queue of datagrams: fixed slots, filled by
// the subscriptions' writer goroutines (push never blocks; a full queue
// drops the new packet) and drained by the link's send loop.
type sendQueue struct {
	wake chan struct{} // capacity 1: data was pushed or the queue closed

	// mu guards the following fields. The slot at head is not written
	// while the send loop holds it (between next and pop).
	mu     sync.Mutex
	slots  [][]byte // each cap MaxFrameHeader+MaxRTPSize
	lens   []int
	head   int
	n      int
	closed bool
}

type pushResult int

const (
	pushOK pushResult = iota
	pushFull
	pushClosed
)

func newSendQueue(size int) *sendQueue {
	q := &sendQueue{wake: make(chan struct{}, 1), slots: make([][]byte, size), lens: make([]int, size)}
	backing := make([]byte, size*(MaxFrameHeader+MaxRTPSize))
	for i := range q.slots {
		q.slots[i] = backing[i*(MaxFrameHeader+MaxRTPSize) : (i+1)*(MaxFrameHeader+MaxRTPSize)]
	}
	return q
}

// push copies the header and pkt into a free slot. pkt is at most
// MaxRTPSize bytes.
func (q *sendQueue) push(h FrameHeader, pkt []byte) pushResult {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return pushClosed
	}
	if q.n == len(q.slots) {
		q.mu.Unlock()
		return pushFull
	}
	i := (q.head + q.n) % len(q.slots)
	s := q.slots[i]
	n, err := h.MarshalTo(s)
	if err != nil {
		q.mu.Unlock()
		return pushFull
	}
	q.lens[i] = n + copy(s[n:], pkt)
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return pushOK
}

// next returns the datagram at the head, waiting for one; the slot stays
// reserved until pop. ok is false when ctx ended or the queue closed.
func (q *sendQueue) next(ctx context.Context) (b []byte, ok bool) {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		if q.n > 0 {
			b = q.slots[q.head][:q.lens[q.head]]
			q.mu.Unlock()
			return b, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-q.wake:
		}
	}
}

// pop frees the head slot.
func (q *sendQueue) pop() {
	q.mu.Lock()
	if q.n > 0 {
		q.head = (q.head + 1) % len(q.slots)
		q.n--
	}
	q.mu.Unlock()
}

func (q *sendQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
