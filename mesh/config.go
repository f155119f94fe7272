package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// Gossip profiles: memberlist's timing presets.
const (
	// ProfileWAN suits nodes in several regions (memberlist DefaultWANConfig:
	// 5 s probes, slow suspicion); the default.
	ProfileWAN = "wan"
	// ProfileLAN suits nodes in one data centre.
	ProfileLAN = "lan"
	// ProfileLocal suits nodes on one machine (tests, dev).
	ProfileLocal = "local"
)

// Config configures a Node. Zero values mean the defaults in brackets.
type Config struct {
	// NodeName is this node's name in the cluster, also its bridge name in
	// the directory. Required, at most 128 bytes.
	NodeName string
	// Region, and the place when HasGeo, as gossiped.
	Region   string
	HasGeo   bool
	Lat, Lon float64
	// Advertised endpoints of the other roles, gossiped as they are.
	SignalingURL, WebRTCAddr, RelayAddr, TURNAddr string
	// Capacity is the number of participants this node accepts [0: unknown].
	Capacity int

	// GossipListener (TCP) and GossipConn (UDP) are memberlist's sockets,
	// bound to the same port: memberlist advertises one port for both.
	// Required. The node owns them from New on: Close, or a New or Start
	// that fails, closes them.
	GossipListener net.Listener
	GossipConn     net.PacketConn
	// GossipAdvertise is the address other nodes reach gossip at [the
	// listener's address; a port 0 here means the listener's port].
	GossipAdvertise string
	// RaftListener is where raft and forwarded directory requests arrive
	// (TCP, mutual TLS). Required for voters, unused by other nodes; owned
	// by the node like the gossip sockets.
	RaftListener net.Listener
	// RaftAdvertise is the address other nodes reach raft at [the
	// listener's address; port 0: the listener's port]. It must be a
	// concrete IP.
	RaftAdvertise string
	// Dial opens the TCP connections this node makes to others: gossip
	// streams, raft, forwarded requests [net.Dialer.DialContext]. Tests
	// inject network faults here and around the sockets.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Join lists gossip addresses of existing nodes.
	Join []string
	// Voter makes this node a raft voter; other nodes forward writes.
	Voter bool
	// BootstrapExpect is the number of voters that must see each other
	// before the first raft configuration is made [1].
	BootstrapExpect int

	// Keys are the keys derived from the cluster secret. Required.
	Keys Keys
	// PKI authenticates raft and forwarding links. Required.
	PKI *PKI

	// GossipProfile is ProfileWAN, ProfileLAN or ProfileLocal [ProfileWAN].
	GossipProfile string
	// RaftTimeout is raft's heartbeat and election timeout; the leader
	// lease is half of it. Size it to a few inter-region round trips [1.5s].
	RaftTimeout time.Duration
	// DeadGrace is how long a voter may be dead before the leader removes
	// it from the raft configuration [30s]. A voter that left is removed at
	// once, and so is the old ID of a voter that restarted.
	DeadGrace time.Duration
	// BridgeGrace is how long a bridge may be dead before the leader
	// removes it from every room, deleting rooms it held alone [15s].
	BridgeGrace time.Duration
	// LoadInterval is how often the load is re-read and gossiped [2s].
	LoadInterval time.Duration
	// ReconcileInterval is how often the leader reconciles voters and
	// bridges with membership, besides on every membership event [1s].
	ReconcileInterval time.Duration
	// ReconnectInterval is how often a node retries dead members and the
	// Join addresses [10s], so a healed partition merges again.
	ReconnectInterval time.Duration
	// ApplyTimeout bounds a directory call that has no deadline of its own,
	// including the wait for a leader [5s].
	ApplyTimeout time.Duration
	// SnapshotInterval is how often raft checks whether to snapshot (in
	// memory) and truncate its log [5s]; TrailingLogs entries are kept [64].
	SnapshotInterval time.Duration
	TrailingLogs     uint64

	// Load returns the current load; nil: no participants. CPU is always
	// measured by mesh.
	Load func() Load
	// LiveRooms returns the keys of the rooms this node's bridge holds
	// participants of, joins in progress included. Every ReportInterval
	// the node reports them to the raft leader, which removes this bridge
	// from rooms it has not held for GhostGrace (ghosts.go). nil: no
	// reports, and this bridge's rooms end only by Leave or its death. It
	// must not block.
	LiveRooms func() []RoomKey
	// ReportInterval is how often LiveRooms is reported [5s].
	ReportInterval time.Duration
	// GhostGrace is how long the directory may list this bridge in a room
	// missing from its reports before the leader removes it [30s]: longer
	// than any join takes from the directory's answer to the bridge.
	GhostGrace time.Duration

	// RelayLinks returns this node's relay links for the admin status
	// answer (Status.RelayLinks); nil: none shown. mesh does not import
	// the relay: cmd fills it from the relay's statistics. It must not
	// block.
	RelayLinks func() []LinkStatus

	// Logger; nil means slog.Default().
	Logger *slog.Logger

	// tuneGossip adjusts memberlist timings (tests).
	tuneGossip func(*memberlist.Config)
}

func (c Config) withDefaults() Config {
	if c.Dial == nil {
		c.Dial = (&net.Dialer{}).DialContext
	}
	if c.BootstrapExpect == 0 {
		c.BootstrapExpect = 1
	}
	if c.GossipProfile == "" {
		c.GossipProfile = ProfileWAN
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.RaftTimeout, 1500*time.Millisecond)
	def(&c.DeadGrace, 30*time.Second)
	def(&c.BridgeGrace, 15*time.Second)
	def(&c.LoadInterval, 2*time.Second)
	def(&c.ReconcileInterval, time.Second)
	def(&c.ReconnectInterval, 10*time.Second)
	def(&c.ApplyTimeout, 5*time.Second)
	def(&c.SnapshotInterval, 5*time.Second)
	def(&c.ReportInterval, 5*time.Second)
	def(&c.GhostGrace, 30*time.Second)
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first missing or invalid field.
func (c Config) Validate() error {
	switch {
	case c.NodeName == "" || len(c.NodeName) > maxBridgeName:
		return errors.New("mesh: NodeName must be 1 to 128 bytes")
	case len(c.Keys.GossipKey) != 32 || len(c.Keys.CAKey) == 0:
		return errors.New("mesh: Keys are required")
	case c.PKI == nil:
		return errors.New("mesh: PKI is required")
	case c.BootstrapExpect < 1 || c.BootstrapExpect > 7:
		return errors.New("mesh: bootstrap-expect must be 1 to 7 (3 or 5 across regions)")
	case c.GossipProfile != ProfileWAN && c.GossipProfile != ProfileLAN && c.GossipProfile != ProfileLocal:
		return fmt.Errorf("mesh: gossip profile must be wan, lan or local")
	case c.RaftTimeout < 10*time.Millisecond:
		return errors.New("mesh: raft timeout under 10ms")
	case c.HasGeo && (c.Lat < -90 || c.Lat > 90 || c.Lon < -180 || c.Lon > 180):
		return errors.New("mesh: latitude must be within ±90 and longitude within ±180")
	case len(c.Region) > maxAddrLen:
		return errors.New("mesh: region longer than 64 bytes")
	}
	for _, s := range []string{c.SignalingURL, c.WebRTCAddr, c.RelayAddr, c.TURNAddr} {
		if len(s) > maxAddrLen {
			return errors.New("mesh: an advertised address is longer than 64 bytes")
		}
	}
	switch {
	case c.GossipListener == nil || c.GossipConn == nil:
		return errors.New("mesh: the gossip listener and packet conn are required")
	case c.Voter && c.RaftListener == nil:
		return errors.New("mesh: a voter needs the raft listener")
	}
	for _, a := range append([]string{c.GossipAdvertise, c.RaftAdvertise}, c.Join...) {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return errors.New("mesh: an advertised or join address is not host:port")
		}
	}
	return nil
}
