package bridge

import "sync/atomic"

// Stats are the bridge's forwarding counters since New, as plain numbers with
// no room or participant labels (DESIGN.md section 6, invariant 8).
type Stats struct {
	// ForwardedPackets and ForwardedBytes count RTP packets (and their
	// sizes) written to subscribers, retransmissions included.
	ForwardedPackets uint64
	ForwardedBytes   uint64
	// ReceivedPackets counts RTP packets read from publishers.
	ReceivedPackets uint64
	// Retransmits counts packets resent from the cache in answer to NACKs.
	Retransmits uint64
	// KeyframeRequests counts PLIs sent to publishers.
	KeyframeRequests uint64
	// Drops counts packets not delivered to a subscriber, by reason.
	Drops DropStats
}

// DropStats counts dropped packets by reason.
type DropStats struct {
	// QueueFull: a subscriber's queue overflowed (slow writer).
	QueueFull uint64
	// WaitKeyframe: video skipped after an overflow until the next keyframe.
	WaitKeyframe uint64
	// TooBig: a packet larger than a cache slot.
	TooBig uint64
	// Malformed: a packet whose RTP header did not parse.
	Malformed uint64
	// Evicted: a queued packet overwritten in the cache before its writer
	// got to it.
	Evicted uint64
	// Unbound: the subscriber's track was not negotiated or its
	// connection not up yet.
	Unbound uint64
	// WriteError: the network write failed.
	WriteError uint64
	// NACKMiss: a NACKed packet no longer in the cache.
	NACKMiss uint64
}

// counters are the atomic counters behind Stats, shared by every track of a
// bridge.
type counters struct {
	fwdPackets, fwdBytes, received, retransmits, keyframeRequests atomic.Uint64

	dropQueueFull, dropWaitKeyframe, dropTooBig, dropMalformed,
	dropEvicted, dropUnbound, dropWriteError, dropNACKMiss atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		ForwardedPackets: c.fwdPackets.Load(),
		ForwardedBytes:   c.fwdBytes.Load(),
		ReceivedPackets:  c.received.Load(),
		Retransmits:      c.retransmits.Load(),
		KeyframeRequests: c.keyframeRequests.Load(),
		Drops: DropStats{
			QueueFull:    c.dropQueueFull.Load(),
			WaitKeyframe: c.dropWaitKeyframe.Load(),
			TooBig:       c.dropTooBig.Load(),
			Malformed:    c.dropMalformed.Load(),
			Evicted:      c.dropEvicted.Load(),
			Unbound:      c.dropUnbound.Load(),
			WriteError:   c.dropWriteError.Load(),
			NACKMiss:     c.dropNACKMiss.Load(),
		},
	}
}
