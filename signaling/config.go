package signaling

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/relay"
	"github.com/meshmeet/meshmeet/signaling/placement"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Config configures a Server. Zero values mean the defaults in the comments.
type Config struct {
	// NodeName is this node's name: the bridge name in the directory.
	NodeName string
	// Region is this node's region.
	Region string
	// RoomKey is the HMAC key that turns room names into directory keys.
	// Required, at least 16 bytes.
	RoomKey []byte
	// Directory is the room directory. Required.
	Directory mesh.Directory
	// Bridge is this node's SFU. Required.
	Bridge *bridge.Bridge
	// ICEServers returns the ICE servers (with fresh TURN credentials) handed
	// to a participant at join and at every resume. sessionID is an opaque
	// random ID of the participant's session, the same across its resumes,
	// shown to no client: not the resume secret, not the participant ID.
	// Called without any signaling lock held. Nil: none.
	ICEServers func(sessionID string) []wire.ICEServer
	// SessionEnded, when set, is called exactly once for every session
	// ICEServers was called for, when it ends for good: leave, removal,
	// resume window expired, node shutdown. Called without any signaling
	// lock held; it must not block for long.
	SessionEnded func(sessionID string)
	// Regions returns the cluster's regions with one probe URL each, for
	// GET /regions (probe.go), built by the caller from gossip. Called per
	// request without any signaling lock held; must not block. Nil: the
	// list is empty.
	Regions func() []RegionProbe
	// Alternates returns the base URLs of the other live, not draining
	// nodes, this node's region first, for GET /alternates: where a
	// client resumes when it loses this node (drain.go). Called per
	// request without any signaling lock held; must not block. Nil: none.
	Alternates func() []string
	// Bridges returns the cluster's bridges with their gossiped load and
	// public URLs, this node included, for placement at join (place.go):
	// a join that placement puts on another node is redirected there.
	// Called per join without any signaling lock held; must not block.
	// Nil: every join stays on the node it reached.
	Bridges func() []placement.Bridge
	// RegionPin, when not empty, pins the rooms joined through this node
	// to these regions (data residency): placement never puts them
	// elsewhere and refuses a join when they are full.
	RegionPin []string
	// PlaceThreshold is the stress past which the bridge already holding
	// a meeting stops being preferred [placement.DefaultThreshold].
	PlaceThreshold float64
	// ClusterOrigins are hosts (host[:port]) of the names pages are served
	// under besides the nodes' public URLs, e.g. the latency-routed name:
	// their pages may open a WebSocket here after a redirect. Nil: only
	// this node's own host and the cluster's public URLs.
	ClusterOrigins []string
	// Admin, when set, is mounted at /admin/.
	Admin http.Handler
	// ResumeWindow is how long a participant whose WebSocket dropped is kept
	// for a resume [20s].
	ResumeWindow time.Duration
	// MaxParticipants bounds the participants on this node [1000].
	MaxParticipants int
	// MaxRoomParticipants bounds one room's participants on this node [100].
	MaxRoomParticipants int
	// MaxPerSource bounds the WebSockets one source holds open at once and,
	// separately, the participants it joined (a dropped socket's participant
	// counts until its resume window ends) [100]. A source is the TCP peer's
	// IPv4 address or IPv6 /64; X-Forwarded-For is not trusted.
	MaxPerSource int
	// SourceJoinRate and SourceJoinBurst bound the joins and resumes one
	// source may start, per second and in a burst [5, 30].
	SourceJoinRate  float64
	SourceJoinBurst int
	// SourceMessageRate and SourceMessageBurst bound the messages all the
	// sockets of one source send together, per second [100, burst 300]; a
	// socket past them waits before its next message is read (each socket
	// keeps its own limit of wire.RatePerSecond too).
	SourceMessageRate  float64
	SourceMessageBurst int
	// TrustedProxies are the operator's reverse proxies in front of this
	// node. A request from one of them is attributed, for the per-source
	// limits, to the last X-Forwarded-For address that is not itself a
	// trusted proxy; from any other peer X-Forwarded-For is ignored. Nil:
	// none. Behind a proxy that is not listed, every client shares the
	// proxy's per-source limits.
	TrustedProxies []netip.Prefix
	// MaxUnjoined bounds the WebSockets on this node that have not sent
	// their join yet [500].
	MaxUnjoined int
	// JoinTimeout closes a WebSocket whose join does not arrive in time
	// [10s].
	JoinTimeout time.Duration
	// ChatHistoryBytes bounds the chat this node keeps for late joiners,
	// over all its rooms [16 MiB]. Each room keeps at most 50 messages and
	// 64 KiB.
	ChatHistoryBytes int
	// Relay, when set, spreads a meeting over the bridges that hold it
	// (the cascade, cascade.go): each room is attached to it with the
	// directory's other bridges, and the roster, mute state and chat go
	// to them in room messages. The caller wires the relay's OnRoomMessage,
	// OnRoomAttach, OnRoomDetach, OnLinkUp and OnLinkDown to the Server's
	// RoomMessage, RoomAttached, RoomDetached, LinkUp and LinkDown. Nil:
	// a meeting's participants see only those of this node.
	Relay *relay.Relay
	// RelayAddr returns a node's relay address as the cluster gossips it,
	// "" when unknown. Required with Relay.
	RelayAddr func(node string) string
	// PeerGrace is how long the participants of a node whose relay link
	// broke stay in the rosters, waiting for the link to come back [10s,
	// the relay's default ImportGrace].
	PeerGrace time.Duration
	// StrongModeration limits moderation (mute others, stop their camera,
	// remove, lobby, end the meeting for all) to participants whose join
	// carried a moderator token. Set by --auth jwt. False: soft moderation,
	// everyone moderates (moderation.go).
	StrongModeration bool
	// E2EERequired makes every room require end-to-end encryption: a
	// client whose join does not say it encrypts is refused (e2ee.go). Set
	// by --e2ee-required. False: a moderator may require it per room.
	E2EERequired bool
	// Auth, when set, checks a JWT on every join (--auth jwt, auth.go):
	// without a valid token for the room the join is refused. Nil: --auth
	// none, tokens are ignored.
	Auth *Authenticator
	// AuthCreateOnly relaxes Auth: a token is needed only to create a
	// room; a join without one enters a live room as a guest (never a
	// moderator). Requires Auth.
	AuthCreateOnly bool
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ResumeWindow == 0 {
		c.ResumeWindow = 20 * time.Second
	}
	if c.MaxParticipants == 0 {
		c.MaxParticipants = 1000
	}
	if c.MaxRoomParticipants == 0 {
		c.MaxRoomParticipants = 100
	}
	if c.MaxPerSource == 0 {
		c.MaxPerSource = 100
	}
	if c.SourceJoinRate == 0 {
		c.SourceJoinRate = 5
	}
	if c.SourceJoinBurst == 0 {
		c.SourceJoinBurst = 30
	}
	if c.SourceMessageRate == 0 {
		c.SourceMessageRate = 100
	}
	if c.SourceMessageBurst == 0 {
		c.SourceMessageBurst = 300
	}
	if c.MaxUnjoined == 0 {
		c.MaxUnjoined = 500
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = 10 * time.Second
	}
	if c.PeerGrace == 0 {
		c.PeerGrace = 10 * time.Second
	}
	if c.ChatHistoryBytes == 0 {
		c.ChatHistoryBytes = 16 << 20
	}
	if c.ICEServers == nil {
		c.ICEServers = func(string) []wire.ICEServer { return nil }
	}
	if c.SessionEnded == nil {
		c.SessionEnded = func(string) {}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first missing or invalid field.
func (c Config) Validate() error {
	switch {
	case len(c.RoomKey) < 16:
		return errors.New("signaling: RoomKey must be at least 16 bytes")
	case c.Directory == nil:
		return errors.New("signaling: Directory is required")
	case c.Bridge == nil:
		return errors.New("signaling: Bridge is required")
	case c.Relay != nil && c.RelayAddr == nil:
		return errors.New("signaling: RelayAddr is required with Relay")
	case c.AuthCreateOnly && c.Auth == nil:
		return errors.New("signaling: AuthCreateOnly requires Auth")
	case c.PeerGrace < 0:
		return errors.New("signaling: PeerGrace must not be negative")
	case c.MaxParticipants < 0 || c.MaxRoomParticipants < 0 || c.MaxPerSource < 0 || c.MaxUnjoined < 0 ||
		c.SourceJoinRate < 0 || c.SourceJoinBurst < 0 || c.SourceMessageRate < 0 || c.SourceMessageBurst < 0 || c.JoinTimeout < 0 || c.ResumeWindow < 0 || c.ChatHistoryBytes < 0:
		return errors.New("signaling: limits must not be negative")
	}
	return nil
}
