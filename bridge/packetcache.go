package bridge

import (
	"sync"
	"time"
)

// slotSize is the size of one packet cache slot: an Ethernet MTU. WebRTC
// stacks keep RTP packets under ~1200 bytes; a bigger packet is dropped and
// counted (dropTooBig).
const slotSize = 1500

// packetCache stores the recent packets of one RTP stream (one simulcast
// layer), each packet once, in a fixed ring of slotSize-byte slots indexed by
// sequence number modulo the ring size. The reader stores; the downtracks'
// writers copy out under the lock, so a slot being overwritten is never read
// half-written. It serves forwarding, NACK retransmits and nothing else.
//
// Safe for concurrent use.
type packetCache struct {
	mu    sync.Mutex
	mask  uint16
	data  []byte // len(slots) * slotSize; static after construction
	slots []cacheSlot
}

type cacheSlot struct {
	seq   uint16
	n     uint16 // 0: empty
	flags uint8
}

// newPacketCache returns a cache of n slots; n must be a power of two ≤ 32768.
func newPacketCache(n int) *packetCache {
	if n <= 0 || n&(n-1) != 0 || n > 1<<15 {
		panic("bridge: packet cache size must be a power of two <= 32768")
	}
	return &packetCache{
		mask:  uint16(n - 1),
		data:  make([]byte, n*slotSize),
		slots: make([]cacheSlot, n),
	}
}

// store copies pkt into the slot of seq. It reports false if pkt does not
// fit a slot.
func (c *packetCache) store(seq uint16, pkt []byte, flags uint8) bool {
	if len(pkt) > slotSize || len(pkt) == 0 {
		return false
	}
	i := int(seq & c.mask)
	c.mu.Lock()
	copy(c.data[i*slotSize:], pkt)
	c.slots[i] = cacheSlot{seq: seq, n: uint16(len(pkt)), flags: flags}
	c.mu.Unlock()
	return true
}

// get copies the packet with sequence number seq into dst and returns its
// length and flags; n is 0 when the packet is no longer (or never was) in
// the cache. dst must hold slotSize bytes.
func (c *packetCache) get(seq uint16, dst []byte) (n int, flags uint8) {
	i := int(seq & c.mask)
	c.mu.Lock()
	s := c.slots[i]
	if s.n != 0 && s.seq == seq {
		n = copy(dst, c.data[i*slotSize:i*slotSize+int(s.n)])
		flags = s.flags
	}
	c.mu.Unlock()
	return n, flags
}

const (
	// maxMissing bounds the sequence numbers of one layer awaiting a
	// retransmission: 64 packets is ~100 ms of a 2.5 Mb/s layer.
	maxMissing = 64
	// maxNACKGap is the widest gap asked for packet by packet; a wider
	// one (a break, not a loss) asks for a keyframe instead.
	maxNACKGap = 32
	// nackTries is how often one missing packet is asked for, nackRetry
	// apart (about one inter-bridge RTT), before it is given up.
	nackTries = 3
	nackRetry = 100 * time.Millisecond
)

// nackList holds the sequence numbers missing from one layer's packet
// cache of a track fed through Room.Publish: added by the feeding goroutine
// when a gap appears, removed when the packet arrives late, asked for by
// the track's control goroutine (due). Bounded and without duplicates; it
// allocates nothing. Safe for concurrent use.
type nackList struct {
	mu sync.Mutex
	n  int
	e  [maxMissing]missingSeq
}

type missingSeq struct {
	seq   uint16
	tries uint8
	asked int64 // unix nanoseconds of the last request; 0: not yet
}

// add notes the sequence numbers from..to-1 as missing, skipping those
// already noted. It returns how many did not fit.
func (l *nackList) add(from, to uint16) (over int) {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for s := from; s != to; s++ {
		for i := 0; i < l.n; i++ {
			if l.e[i].seq == s {
				continue next
			}
		}
		if l.n == maxMissing {
			over++
			continue
		}
		l.e[l.n] = missingSeq{seq: s}
		l.n++
	}
	return over
}

// remove forgets seq: it arrived.
func (l *nackList) remove(seq uint16) {
	l.mu.Lock()
	for i := 0; i < l.n; i++ {
		if l.e[i].seq == seq {
			l.n--
			l.e[i] = l.e[l.n]
			break
		}
	}
	l.mu.Unlock()
}

// reset forgets every missing sequence number.
func (l *nackList) reset() {
	l.mu.Lock()
	l.n = 0
	l.mu.Unlock()
}

// due appends to dst the sequence numbers to ask for now (never asked, or
// asked nackRetry ago and fewer than nackTries times), drops those asked
// nackTries times (gaveUp), and reports whether any remain (more).
func (l *nackList) due(dst []uint16, now int64) (out []uint16, more bool, gaveUp int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; i < l.n; {
		e := &l.e[i]
		if e.asked != 0 && now-e.asked < int64(nackRetry) {
			i++
			continue
		}
		if e.tries >= nackTries {
			gaveUp++
			l.n--
			l.e[i] = l.e[l.n]
			continue
		}
		e.tries++
		e.asked = now
		dst = append(dst, e.seq)
		i++
	}
	return dst, l.n > 0, gaveUp
}
