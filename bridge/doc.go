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
// the bridge started has exited. With Config.UDPConns (more sockets on
// the same port, SO_REUSEPORT) the UDP mux is the bridge's own (udpmux.go):
// one reader per socket, routing as pion's. Participant.Close, Room.Close,
// Publication.Close and Subscription.Close wait too, so they must not be
// called from inside an event callback or a TrackSource/TrackSink method.
//
// NewRoom takes the room's log ID from the caller (signaling passes
// mesh.RoomKey.LogID), so that one meeting appears under one value of the
// "room" attribute in every package's logs; the bridge never sees or logs
// the room's name.
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
// One reader goroutine per simulcast layer (or the relay's caller of
// Publication.WriteRTP) reuses its buffer and header, stores each packet
// once in the layer's ring of 1500-byte slots (under the ring's lock), and
// offers (layer, sequence number, flags) to every subscriber through an
// immutable slice (atomic.Pointer), taking each subscriber's queue lock in
// turn; no lock is held while writing to the network. Each DownTrack has a bounded queue (128 entries)
// and one writer goroutine that copies the packet out of the cache, picks
// the layer, rewrites SSRC, sequence number, timestamp and payload type,
// drops header extensions except the audio level (renumbered), and writes
// (a TrackSink gets the packet unchanged instead). Enqueueing never blocks:
// on overflow video drops to the next keyframe (and asks for one), audio
// drops the oldest packet; a retransmission that finds the queue full is
// dropped. NACKs from subscribers are answered from the cache of the layer
// being forwarded; PLI and FIR go to the publisher. Keyframe replay queues
// the cached packets from the last keyframe on, which the writer reads
// from the cache like live ones. Counters, drops by reason included, are
// in Bridge.Stats.
//
// # The relay seam
//
// Room.Publish adds a track whose packets come from elsewhere (the relay's
// import of another bridge's track): caller-given track and participant
// IDs, codec, audio level extension ID and simulcast layers, each with the
// height, bitrate and activity measured at the publisher's bridge.
// Publication.WriteRTP feeds it through the same per-packet path as a
// participant's track. Its TrackSource is asked for keyframes (rate-limited
// per layer), for the packets missing from the cache (sequence gaps of at
// most 32 packets; each missing packet at most 3 times, 100 ms apart; at
// most 64 outstanding per layer; a wider gap asks for a keyframe instead)
// and told the demand: the set of layers its subscribers here target or
// still receive, empty when nobody wants it. A subscriber may target a
// layer that is declared but not flowing yet; it switches at that layer's
// first keyframe. TrackPublished reports such a track with Remote set, so
// that the relay does not export it again.
//
// Room.Subscribe adds a TrackSink that receives one layer of a track as
// the publisher sent it (original SSRC and sequence numbers), from its own
// writer goroutine with the same bounded queue, keyframe replay,
// switch-at-keyframe and drop counters as a participant's DownTrack;
// Subscription.Retransmit resends given sequence numbers from the cache.
// Room.TrackParams describes a track as Publish takes it. track.go has the
// contract and the protocol flow of one cascade hop.
//
// # Audio levels
//
// Each audio track keeps a smoothed RFC 6464 level. Every 250 ms the room
// picks the loudest participant above about -70 dBov; a new dominant
// speaker must be 6 dB louder than the current one for two ticks in a row.
// RoomEvents.DominantSpeaker is called on changes only.
//
// # Last-N
//
// The same tick keeps the participants heard (level above about -70 dBov)
// in a recency list, from local tracks and Publish'd ones alike (both
// carry the RFC 6464 extension). When a room has more video publishers
// than N (Room.SetLastN; default DefaultLastN = 25), each participant
// receives the video of the N most recent speakers (filled up, in ID
// order, with publishers who never spoke) plus the tracks it pinned
// (Participant.Pin; the protocol's prefs.pin); the others' downtracks are
// paused (layer target -1), so their demand, and with it what the cascade
// carries for an imported track, falls. A track entering the set resumes
// at a keyframe (cached or requested). Above AudioLastNMin (20) audio
// publishers each participant hears only the AudioLastN (5) most recent
// speakers and its pins: other audio is not queued for it (audio demand
// upstream is unchanged: a remote audio track keeps crossing the link).
// Small meetings forward everything. The per-packet cost is one atomic
// load per downtrack.
package bridge
