package relay

import (
	"sync/atomic"
	"time"
)

// DropReason says why a datagram or control message was dropped.
type DropReason int

// Drop reasons. Each is a counter in Stats.Drops.
const (
	DropQueueFull    DropReason = iota // link send queue full
	DropNoLink                         // packet for a link that is down
	DropTooLarge                       // RTP bigger than MaxRTPSize or the path's datagram size
	DropMalformed                      // datagram header does not parse
	DropUnknownTrack                   // datagram for a track number not published on the link
	DropNotWanted                      // datagram for a track nobody here subscribes to
	DropControl                        // control message that could not be queued (NACK, keyframe, stats)
	DropBadControl                     // malformed control message: the link was closed
	DropRecvQueue                      // link receive queue full (datagrams arrive faster than the bridge takes them)
	numDropReasons
)

var dropNames = [numDropReasons]string{"queue_full", "no_link", "too_large", "malformed", "unknown_track", "not_wanted", "control_queue_full", "bad_control", "recv_queue_full"}

// String returns the reason's metric label.
func (d DropReason) String() string {
	if d < 0 || d >= numDropReasons {
		return "unknown"
	}
	return dropNames[d]
}

// counters are the relay's aggregate counters; atomics, updated on the
// packet path.
type counters struct {
	datagramsOut, datagramsIn atomic.Uint64
	bytesOut, bytesIn         atomic.Uint64
	controlOut, controlIn     atomic.Uint64
	linksOpened, linksRefused atomic.Uint64
	dialFailures              atomic.Uint64
	keyframesOut, keyframesIn atomic.Uint64
	nackedOut, nackedIn       atomic.Uint64
	drops                     [numDropReasons]atomic.Uint64
}

func (c *counters) drop(r DropReason) { c.drops[r].Add(1) }

// Stats is a snapshot of the relay's counters and links. It names nodes but
// never rooms or participants.
type Stats struct {
	Links         int    // links up now
	LinksOpened   uint64 // links established since start
	LinksRefused  uint64 // hellos refused after the handshake (bad name, no datagrams)
	DialFailures  uint64 // dial attempts that gave no link (unreachable, refused, lost the tie-break)
	DatagramsOut  uint64
	DatagramsIn   uint64
	BytesOut      uint64 // RTP bytes sent in datagrams, headers included
	BytesIn       uint64
	ControlOut    uint64 // control messages sent
	ControlIn     uint64
	KeyframesOut  uint64            // keyframe requests sent upstream
	KeyframesIn   uint64            // keyframe requests received from peers
	NACKedOut     uint64            // sequence numbers asked again upstream
	NACKedIn      uint64            // sequence numbers peers asked again
	Drops         map[string]uint64 // by DropReason.String(), every reason present
	PerLink       []LinkStats
	ExportedTrack int // local tracks published to some peer now
	Subscribed    int // of those, subscribed by the peer (flowing)
	ImportedTrack int // remote tracks published here now
}

// LinkStats describes one link.
type LinkStats struct {
	Peer      string        // node name
	Dialled   bool          // this node dialled the link
	RTT       time.Duration // QUIC smoothed RTT
	Loss      float64       // fraction of QUIC packets lost in the last interval, 0..1
	SendBPS   uint64        // datagram bits per second sent in the last interval
	RecvBPS   uint64        // datagram bits per second received in the last interval
	PeerRTT   time.Duration // as the peer last reported it
	PeerLoss  float64
	LayerCap  int    // highest simulcast layer sent on this link now
	Datagrams uint64 // datagrams sent on this link
	Rooms     int    // rooms the peer attached
}
