package signaling

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
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
	// Admin, when set, is mounted at /admin/.
	Admin http.Handler
	// ResumeWindow is how long a participant whose WebSocket dropped is kept
	// for a resume [20s].
	ResumeWindow time.Duration
	// MaxParticipants bounds the participants on this node [1000].
	MaxParticipants int
	// MaxRoomParticipants bounds one room's participants on this node [100].
	MaxRoomParticipants int
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
	}
	return nil
}
