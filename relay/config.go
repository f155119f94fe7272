package relay

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"time"
)

// ProtoV1 is the ALPN of this relay protocol version. A node offers every
// version it speaks, highest first, and TLS picks the highest both speak
// (docs/relay.md, "Versions").
const ProtoV1 = "meshmeet-relay/1"

// protocolVersion is the version number a Hello carries.
const protocolVersion = 1

// Config configures a Relay. PacketConn, ServerTLS, ClientTLS and NodeName
// are required; zero values of the others mean the default in their
// comment.
type Config struct {
	// PacketConn is the UDP socket for both accepting and dialling links
	// (one quic.Transport). The caller owns it and closes it after Close.
	PacketConn net.PacketConn
	// ServerTLS and ClientTLS authenticate links: TLS 1.3, each side
	// presents a certificate of the cluster CA and requires one from the
	// other. The relay clones them and sets NextProtos.
	ServerTLS, ClientTLS *tls.Config
	// NodeName is this node's name in the cluster, sent in Hello and used
	// to break ties when two nodes dial each other at once.
	NodeName string

	// OnRoomMessage receives the opaque room messages peers send with
	// SendRoomMessage. Called from a link's control goroutine: must not
	// block; data is valid only during the call. Nil: dropped.
	OnRoomMessage func(conferenceID, fromNode string, data []byte)

	// OnLinkUp is called when a link to node comes up (first time or after
	// a break), after the shared rooms were attached on it: room messages
	// sent while it was down were lost, so signaling sends its state again.
	// Called from the link's goroutine: must not block. Nil: not called.
	OnLinkUp func(node string)

	// OnRoomAttach is called when node attached conferenceID on its link
	// and this node holds the room: a node new to the meeting (which the
	// caller may not have listed yet), or a peer back after a break. The
	// caller sends it the room's state. Called from the link's control
	// goroutine: must not block. Nil: not called.
	OnRoomAttach func(conferenceID, node string)
	// OnRoomDetach is called when node detached conferenceID: the meeting
	// has no participant on node any more. Must not block. Nil: not called.
	OnRoomDetach func(conferenceID, node string)
	// OnLinkDown is called when the link to node ended (a break, the peer
	// closing, or idleness); OnLinkUp follows if it comes back. Must not
	// block. Nil: not called.
	OnLinkDown func(node string)

	// IdleTimeout closes a link that has had no shared room for this long.
	// Default 30 s.
	IdleTimeout time.Duration
	// LinkTimeout declares a link broken after this long without a packet
	// from the peer (QUIC idle timeout; keep-alives go every third of it).
	// Default 6 s.
	LinkTimeout time.Duration
	// DialTimeout bounds one dial attempt. Default 5 s.
	DialTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between dial
	// attempts. Defaults 100 ms and 5 s.
	ReconnectMin, ReconnectMax time.Duration
	// ImportGrace keeps a remote track published in the local room for
	// this long after its link broke, so that a quick reconnect resumes it
	// without the participants seeing it go. Default 10 s.
	ImportGrace time.Duration
	// SendQueue is the number of datagrams queued per link before new ones
	// are dropped. Default 2048 (about 100 ms of 20,000 packets/s).
	SendQueue int
	// StatsInterval is how often link statistics are measured and sent to
	// the peer, and layers adapted to the link's bandwidth. Default 2 s.
	StatsInterval time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.IdleTimeout, 30*time.Second)
	def(&c.LinkTimeout, 6*time.Second)
	def(&c.DialTimeout, 5*time.Second)
	def(&c.ReconnectMin, 100*time.Millisecond)
	def(&c.ReconnectMax, 5*time.Second)
	def(&c.ImportGrace, 10*time.Second)
	def(&c.StatsInterval, 2*time.Second)
	if c.SendQueue == 0 {
		c.SendQueue = 2048
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first missing or invalid field.
func (c Config) Validate() error {
	switch {
	case c.PacketConn == nil:
		return errors.New("relay: PacketConn is required")
	case c.ServerTLS == nil || c.ClientTLS == nil:
		return errors.New("relay: ServerTLS and ClientTLS are required")
	case c.NodeName == "" || len(c.NodeName) > MaxNodeName:
		return errors.New("relay: NodeName is required, at most 128 bytes")
	case c.IdleTimeout < 0 || c.LinkTimeout < 0 || c.DialTimeout < 0 || c.ImportGrace < 0 || c.StatsInterval < 0:
		return errors.New("relay: durations must not be negative")
	case c.ReconnectMin < 0 || c.ReconnectMax < c.ReconnectMin:
		return errors.New("relay: ReconnectMax must be at least ReconnectMin")
	case c.SendQueue < 0 || c.SendQueue > 1<<16:
		return errors.New("relay: SendQueue out of range (0..65536)")
	}
	return nil
}
