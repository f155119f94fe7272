// Package bridge is the SFU: it terminates participants' PeerConnections,
// receives their tracks (UpTrack) and forwards RTP to every subscriber
// (DownTrack), choosing a simulcast layer per subscriber, rewriting SSRC,
// sequence numbers and timestamps so layer switches are seamless, answering
// NACKs from a per-track packet cache, and forwarding keyframe requests.
//
// It imports no sibling package. The per-packet path allocates nothing, holds
// no lock while writing to the network, never waits on the control plane, and
// counts every drop by reason.
//
// # Lifecycle
//
// New only validates. The ICE UDP mux (Config.UDPConn) and TCP mux
// (Config.TCPListener) are created by Run or by the first Room.Join,
// whichever comes first; Run (or Close) closes every room, both muxes and
// with them the socket and the listener, and returns after every goroutine
// the bridge started has exited. Participant.Close and Room.Close wait too,
// so they must not be called from inside an event callback.
//
// # Signaling
//
// Each participant has two PeerConnections. On PCPub the client offers
// (HandleOffer returns the answer) and sends its tracks. On PCSub the bridge
// offers (ParticipantEvents.Offer) and sends everyone else's tracks, each
// with MediaStream ID = publisher's participant ID and track ID =
// TrackInfo.ID. One sub offer is outstanding at a time; tracks that come or
// go meanwhile are offered right after HandleAnswer. A participant with
// nothing to receive gets no sub offer (and gathers no sub candidates) until
// the first track arrives. The m-line of a track that left is reused by the
// next one once the removal was negotiated. Candidates trickle both ways;
// remote candidates that arrive before their PeerConnection's remote
// description are buffered (at most 64).
//
// TrackInfo.ID is chosen by the bridge ("t" + 16 hex digits), not taken
// from the client's SDP, so it is unique in the room whatever clients send.
//
// # Media
//
// Codecs: Opus (111), VP8 (96), VP9 (98), H.264 (102, 125, 112), AV1 (45),
// the same payload types on both PeerConnections. Publisher side: RFC 6464
// audio level, MID, RID and repaired-RID extensions, transport-cc feedback
// (the bridge sends TWCC), NACK (the bridge asks publishers for lost
// packets), PLI and FIR. Subscriber side: goog-remb (the subscriber's
// receive-side estimate picks its layers; no per-packet congestion-control
// work on the bridge), NACK, PLI, FIR. SRTP prefers AEAD_AES_128_GCM.
// Only host candidates are gathered (Config.PublicIPs replace the socket's
// address via 1:1 NAT); mDNS is off and no STUN server is ever contacted.
//
// Simulcast layers are ordered q < h < f when every RID is one of those,
// otherwise in the order of the SDP's a=simulcast line (low to high, as
// WebRTC senders list encodings). A layer's height is read from VP8
// keyframes when it can be; otherwise the top layer is taken as 720p and
// each lower one as half the next. Per subscriber and track the target is
// the highest active layer whose height fits SetMaxHeight (0 pauses, no
// call means no limit) and whose measured bitrate fits the subscriber's
// REMB estimate divided among its video tracks (going up needs 25 %
// headroom, so that the layer does not flap). A switch happens on a
// keyframe of the target layer only; the bridge sends a PLI when it wants
// one (at most one per 500 ms per layer) and repeats it while a subscriber
// still waits. A subscriber whose video starts (new track, or its
// connection just came up) first gets the layer's last keyframe and what
// followed it from the cache when that is at most 64 packets back, without
// a round trip to the publisher; otherwise a PLI.
//
// Keyframes are detected from the clear payload-descriptor prefix only
// (VP8 descriptor and frame tag, H.264 NAL type incl. STAP-A and FU-A, VP9
// P/B bits and spatial ID, AV1 N bit), so E2EE frames can be forwarded.
//
// # Per-packet path
//
// One reader goroutine per simulcast layer reuses its buffer and header,
// stores each packet once in the layer's ring of 1500-byte slots, and offers
// (layer, sequence number, flags) to every subscriber through an immutable
// slice (atomic.Pointer). Each DownTrack has a bounded queue (128 entries)
// and one writer goroutine that copies the packet out of the cache, picks
// the layer, rewrites SSRC, sequence number, timestamp and payload type,
// drops header extensions except the audio level (renumbered), and writes.
// Enqueueing never blocks: on overflow video drops to the next keyframe
// (and asks for one), audio drops the oldest packet. NACKs from
// subscribers are answered from the cache of the layer being forwarded;
// PLI and FIR go to the publisher. Counters are in Bridge.Stats.
//
// # Audio levels
//
// Each audio track keeps a smoothed RFC 6464 level. Every 250 ms the room
// picks the loudest participant above about -70 dBov; a new dominant
// speaker must be 6 dB louder than the current one for two ticks in a row.
// RoomEvents.DominantSpeaker is called on changes only.
package bridge
