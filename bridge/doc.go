// Package bridge is the SFU: it terminates participants' PeerConnections,
// receives their tracks (UpTrack) and forwards RTP to every subscriber
// (DownTrack), choosing a simulcast layer per subscriber, rewriting SSRC,
// sequence numbers and timestamps so layer switches are seamless, answering
// NACKs from a per-track packet cache, and forwarding keyframe requests.
//
// It imports no sibling package. The per-packet path allocates nothing, holds
// no lock while writing to the network, never waits on the control plane, and
// counts every drop by reason.
package bridge
