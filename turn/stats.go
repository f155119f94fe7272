package turn

import "sync/atomic"

// Stats are the server's counters. Every refusal is counted under its
// reason; no counter carries an address or a username.
type Stats struct {
	Allocations      int    // live allocations
	AllocationsTotal uint64 // allocations made since start

	AuthMalformed   uint64 // username not "expiry:id"
	AuthExpired     uint64 // expired (Allocate), or past the refresh grace
	AuthFuture      uint64 // expiry further ahead than the credential TTL allows
	AuthFailed      uint64 // wrong password (MESSAGE-INTEGRITY check failed)
	AuthOtherServer uint64 // credentials another server (node) minted for its own use
	UnauthLimited   uint64 // error answers (401 and others) not sent: over the per-source rate
	BindingLimited  uint64 // Binding answers not sent: over the per-source rate (shared with errors)
	QuotaUser       uint64 // allocations refused: per-user quota
	QuotaTotal      uint64 // allocations refused: total quota
	SessionEnded    uint64 // requests refused: the credentials' session ended (EndSession)
	TCPRelayRefused uint64 // TCP relay allocations (RFC 6062) refused
	PeerDenied      uint64 // CreatePermission / ChannelBind refused by the peer policy
	PacketsDenied   uint64 // relayed packets dropped by the peer policy (either direction)
	BandwidthDrops  uint64 // relayed packets dropped: over the per-allocation bitrate
	TCPConnsLimited uint64 // TCP/TLS connections refused: over the connection limit
	TCPTimeouts     uint64 // TCP/TLS connections closed: setup, a frame or the silence took too long

	RelayedPackets uint64 // packets relayed, either direction
	RelayedBytes   uint64 // their payload bytes
	NoChannel      uint64 // ChannelData dropped: no such channel for that client
	Malformed      uint64 // client datagrams dropped: neither STUN nor whole ChannelData
	QueueDrops     uint64 // packets dropped: pion's queue full (data plane)
	SendErrors     uint64 // relayed packets the socket refused (full buffer, closed)
}

// counters is the live, atomic form of Stats.
type counters struct {
	allocationsTotal atomic.Uint64
	authMalformed    atomic.Uint64
	authExpired      atomic.Uint64
	authFuture       atomic.Uint64
	authFailed       atomic.Uint64
	authOtherServer  atomic.Uint64
	unauthLimited    atomic.Uint64
	bindingLimited   atomic.Uint64
	quotaUser        atomic.Uint64
	quotaTotal       atomic.Uint64
	sessionEnded     atomic.Uint64
	tcpRelayRefused  atomic.Uint64
	peerDenied       atomic.Uint64
	packetsDenied    atomic.Uint64
	bandwidthDrops   atomic.Uint64
	tcpConnsLimited  atomic.Uint64
	tcpTimeouts      atomic.Uint64
	relayedPackets   atomic.Uint64
	relayedBytes     atomic.Uint64
	noChannel        atomic.Uint64
	malformed        atomic.Uint64
	queueDrops       atomic.Uint64
	sendErrors       atomic.Uint64

	pionPackets atomic.Uint64 // of relayedPackets, those pion relayed (tests: the rest are the data plane's)
}

// relayed counts one relayed packet of n payload bytes.
func (c *counters) relayed(n int) {
	c.relayedPackets.Add(1)
	c.relayedBytes.Add(uint64(n))
}

// relayedByPion counts one packet relayed on pion's path.
func (c *counters) relayedByPion(n int) {
	c.relayed(n)
	c.pionPackets.Add(1)
}

func (c *counters) snapshot() Stats {
	return Stats{
		AllocationsTotal: c.allocationsTotal.Load(),
		AuthMalformed:    c.authMalformed.Load(),
		AuthExpired:      c.authExpired.Load(),
		AuthFuture:       c.authFuture.Load(),
		AuthFailed:       c.authFailed.Load(),
		AuthOtherServer:  c.authOtherServer.Load(),
		UnauthLimited:    c.unauthLimited.Load(),
		BindingLimited:   c.bindingLimited.Load(),
		QuotaUser:        c.quotaUser.Load(),
		QuotaTotal:       c.quotaTotal.Load(),
		SessionEnded:     c.sessionEnded.Load(),
		TCPRelayRefused:  c.tcpRelayRefused.Load(),
		PeerDenied:       c.peerDenied.Load(),
		PacketsDenied:    c.packetsDenied.Load(),
		BandwidthDrops:   c.bandwidthDrops.Load(),
		TCPConnsLimited:  c.tcpConnsLimited.Load(),
		TCPTimeouts:      c.tcpTimeouts.Load(),
		RelayedPackets:   c.relayedPackets.Load(),
		RelayedBytes:     c.relayedBytes.Load(),
		NoChannel:        c.noChannel.Load(),
		Malformed:        c.malformed.Load(),
		QueueDrops:       c.queueDrops.Load(),
		SendErrors:       c.sendErrors.Load(),
	}
}
