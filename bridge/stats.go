package bridge

import "sync/atomic"

// Stats are the bridge's forwarding counters since New, as plain numbers with
// no room or participant labels (DESIGN.md section 6, invariant 8).
type Stats struct {
	// ForwardedPackets and ForwardedBytes count RTP packets (and their
	// sizes) written to subscribers (participants and Room.Subscribe
	// sinks), retransmissions included.
	ForwardedPackets uint64
	ForwardedBytes   uint64
	// ReceivedPackets counts RTP packets read from publishers or written
	// to publications (Room.Publish).
	ReceivedPackets uint64
	// Retransmits counts packets resent from the cache in answer to NACKs.
	Retransmits uint64
	// KeyframeRequests counts keyframe requests sent to track sources
	// (PLIs to publishers, requests to the relay).
	KeyframeRequests uint64
	// RetransmitRequests counts sequence numbers a track fed through
	// Room.Publish asked its source for again (gaps in its packet cache).
	RetransmitRequests uint64
	// Unrepaired counts packets missing from such a track that were not
	// asked for (gap too wide, too many missing) or never came.
	Unrepaired uint64
	// ThinWrites counts forwarded packets that took the thin write path
	// (thinwrite.go) rather than pion's.
	ThinWrites uint64
	// Drops counts packets not delivered to a subscriber, by reason.
	Drops DropStats
	// Candidates counts the remote ICE candidates the bridge refused.
	Candidates CandidateStats
}

// CandidateStats counts refused remote ICE candidates by reason.
type CandidateStats struct {
	// Denied: the address is one Config.AllowRemoteCandidate refuses.
	Denied uint64
	// OverLimit: the PeerConnection already had maxRemoteCandidates.
	OverLimit uint64
	// Malformed: the candidate did not parse or named no IP address.
	Malformed uint64
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
	// NACKQueueFull: a retransmission not queued because the
	// subscriber's queue was full.
	NACKQueueFull uint64
	// Unpublished: a packet written to a publication after Close.
	Unpublished uint64
	// MuxQueueFull: a datagram read by the multi-socket UDP mux
	// (Config.UDPConns) while its ICE conn already held muxQueueLen.
	MuxQueueFull uint64
	// MuxUnroutable: a datagram the multi-socket UDP mux read from an
	// address no conn talks to that was not a STUN message for a known
	// ufrag.
	MuxUnroutable uint64
	// MuxMalformed: a datagram the multi-socket UDP mux read that was
	// bigger than an Ethernet MTU, or a STUN message from an unknown
	// address that did not parse or named no ufrag.
	MuxMalformed uint64
}

// counters are the atomic counters behind Stats, shared by every track of a
// bridge.
type counters struct {
	fwdPackets, fwdBytes, received, retransmits, keyframeRequests,
	retransmitRequests, lossUnrepaired, thinWrites atomic.Uint64

	dropQueueFull, dropWaitKeyframe, dropTooBig, dropMalformed,
	dropEvicted, dropUnbound, dropWriteError, dropNACKMiss,
	dropNACKQueueFull, dropUnpublished atomic.Uint64

	dropMuxQueueFull, dropMuxUnroutable, dropMuxMalformed atomic.Uint64

	candDenied, candOverLimit, candMalformed atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		ForwardedPackets:   c.fwdPackets.Load(),
		ForwardedBytes:     c.fwdBytes.Load(),
		ReceivedPackets:    c.received.Load(),
		Retransmits:        c.retransmits.Load(),
		KeyframeRequests:   c.keyframeRequests.Load(),
		RetransmitRequests: c.retransmitRequests.Load(),
		Unrepaired:         c.lossUnrepaired.Load(),
		ThinWrites:         c.thinWrites.Load(),
		Drops: DropStats{
			QueueFull:     c.dropQueueFull.Load(),
			WaitKeyframe:  c.dropWaitKeyframe.Load(),
			TooBig:        c.dropTooBig.Load(),
			Malformed:     c.dropMalformed.Load(),
			Evicted:       c.dropEvicted.Load(),
			Unbound:       c.dropUnbound.Load(),
			WriteError:    c.dropWriteError.Load(),
			NACKMiss:      c.dropNACKMiss.Load(),
			NACKQueueFull: c.dropNACKQueueFull.Load(),
			Unpublished:   c.dropUnpublished.Load(),
			MuxQueueFull:  c.dropMuxQueueFull.Load(),
			MuxUnroutable: c.dropMuxUnroutable.Load(),
			MuxMalformed:  c.dropMuxMalformed.Load(),
		},
		Candidates: CandidateStats{
			Denied:    c.candDenied.Load(),
			OverLimit: c.candOverLimit.Load(),
			Malformed: c.candMalformed.Load(),
		},
	}
}
