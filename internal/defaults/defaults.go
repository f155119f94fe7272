// Package defaults holds meshmeet's default listening ports, the one source
// that the CLI flags, the systemd unit check and the Terraform security-group
// check all read.
package defaults

// Default ports. Changing one changes the flag default and what the
// deployment tests expect the firewall to open.
const (
	HTTPPort    = 7880 // web client, WebSocket signaling, probe, health, admin API (TCP)
	RTCPort     = 7882 // WebRTC media: ICE UDP mux and ICE-TCP (UDP and TCP)
	GossipPort  = 7946 // memberlist (UDP and TCP), cluster-internal
	RaftPort    = 7947 // raft over mutual TLS (TCP), cluster-internal
	RelayPort   = 7443 // QUIC relay between bridges (UDP), cluster-internal
	TURNPort    = 3478 // TURN over UDP and TCP
	TURNTLSPort = 5349 // TURN over TLS (TCP), when a certificate is set
)
