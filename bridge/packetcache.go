package bridge

import "sync"

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
