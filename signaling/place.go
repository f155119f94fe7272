package signaling

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling/placement"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Placement at join (issue 12 item 2, DESIGN.md section 4). Before a new
// participant joins, signaling asks placement.Decide which bridge of the
// cluster should hold it, from the gossiped load (Config.Bridges), the
// bridges already holding the meeting (the directory), the client's
// measured round trips per region (join.rtts) and the room's region pin.
// When the answer is another node, the client is sent a redirect to that
// node's public URL (redirect.go) and joins there, where placement runs
// again and, with the same inputs, keeps it.

const (
	// rttSlack: the region a client reached keeps it unless another
	// region measures more than this nearer (placement.Input.RTTSlack):
	// probe noise, or a region a few milliseconds nearer, is not worth a
	// redirect.
	rttSlack = 20 * time.Millisecond
	// reachedSlack: the node a client reached keeps the join while its
	// stress is at most this much above the least stressed bridge of the
	// region (placement.Input.ReachedSlack): a redirect costs the client
	// a reconnect, not worth a few participants' difference.
	reachedSlack = 0.05
	// placedTTL forgets the joins placed on a bridge when its gossiped
	// load has not changed for this long (they failed, or the load did
	// not move): placed joins correct the last report, not every report.
	placedTTL = 15 * time.Second
	// placeLookupTimeout bounds the directory lookup of the meeting's
	// bridges; past it the join is placed as for a new meeting.
	placeLookupTimeout = 3 * time.Second
)

var (
	// errPinnedFull: the room may only use its pinned regions (data
	// residency) and none can take the participant: their bridges are
	// full or draining, or the join reached a node outside them that
	// could not send it on.
	errPinnedFull = &wire.Error{Code: wire.CodeFull, Message: "this meeting is restricted to certain regions, and no server there can take you now"}
	// errClusterFull: every bridge of the cluster is at capacity.
	errClusterFull = &wire.Error{Code: wire.CodeFull, Message: "every server is at capacity"}
	// errPlacedElsewhere: the join was answered with a redirect.
	errPlacedElsewhere = errors.New("placed on another node")
)

// placeState is the Server's placement state: the joins this node placed
// on each bridge since the bridge's last load report
// (placement.Bridge.PlacedSinceReport), and counters.
type placeState struct {
	here, away, refused atomic.Uint64

	mu     sync.Mutex
	placed map[string]placedCount // by bridge name; guarded by mu
}

type placedCount struct {
	report loadReport
	at     time.Time // when report was first seen
	n      int
}

// loadReport is a bridge's gossiped load; a change is a new report.
type loadReport struct {
	participants int
	cpu          float64
	bitrate      int64
}

// decide runs placement.Decide with the placed counts filled in and, on
// success, counts the join on the chosen bridge.
func (pl *placeState) decide(in placement.Input, now time.Time) (placement.Decision, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.placed == nil {
		pl.placed = map[string]placedCount{}
	}
	seen := make(map[string]bool, len(in.Bridges))
	for i := range in.Bridges {
		b := &in.Bridges[i]
		seen[b.Name] = true
		r := loadReport{b.Participants, b.CPU, b.BitrateBps}
		pc, ok := pl.placed[b.Name]
		if !ok || pc.report != r || now.Sub(pc.at) > placedTTL {
			pc = placedCount{report: r, at: now}
			pl.placed[b.Name] = pc
		}
		b.PlacedSinceReport += pc.n
	}
	for name := range pl.placed {
		if !seen[name] {
			delete(pl.placed, name)
		}
	}
	d, err := placement.Decide(in)
	if err == nil {
		pc := pl.placed[d.Bridge]
		pc.n++
		pl.placed[d.Bridge] = pc
	}
	return d, err
}

// place decides where a new participant's join (not a resume) goes. It
// returns nil when the join stays here, errPlacedElsewhere after sending
// the client a redirect, or the error to end the session with. Without
// Config.Bridges every join stays.
func (s *Server) place(ctx context.Context, c *conn, m *wire.Message) error {
	if s.cfg.Bridges == nil || m.Resume != nil || m.Version != wire.Version {
		return nil
	}
	bridges := s.cfg.Bridges()
	if c.secure {
		// An https page cannot follow a redirect to an http URL (mixed
		// content): only https members, and this node, are candidates.
		bridges = slices.DeleteFunc(bridges, func(b placement.Bridge) bool {
			return b.Name != s.cfg.NodeName && !strings.HasPrefix(b.PublicURL, "https://")
		})
	}
	pin := s.joinPin(m)
	if len(bridges) == 0 || (len(bridges) == 1 && bridges[0].Name == s.cfg.NodeName && len(pin) == 0) {
		return nil
	}
	in := placement.Input{
		Bridges:       bridges,
		ReachedRegion: s.cfg.Region,
		ReachedBridge: s.cfg.NodeName,
		ReachedSlack:  reachedSlack,
		RTTSlack:      rttSlack,
		Pin:           pin,
		Threshold:     s.cfg.PlaceThreshold,
	}
	if len(m.RTTs) > 0 {
		in.RTTs = make(map[string]time.Duration, len(m.RTTs))
		for _, r := range m.RTTs {
			in.RTTs[r.Region] = time.Duration(r.MS) * time.Millisecond
		}
	}
	key := mesh.NewRoomKey(s.cfg.RoomKey, m.Room)
	lctx, cancel := context.WithTimeout(ctx, placeLookupTimeout)
	room, ok, err := s.cfg.Directory.Lookup(lctx, key)
	cancel()
	if err == nil && ok {
		in.Room = room.Bridges
		// A live room keeps the pin it was created under, wherever this
		// join arrived: the join may narrow it, never widen it.
		in.Pin = intersectPins(in.Pin, room.Pin)
	}
	d, err := s.plc.decide(in, time.Now())
	switch {
	case errors.Is(err, placement.ErrPinnedFull):
		s.plc.refused.Add(1)
		return errPinnedFull
	case errors.Is(err, placement.ErrFull):
		s.plc.refused.Add(1)
		return errClusterFull
	case err != nil:
		return nil // no bridge known (gossip not up yet): stay here
	case d.Bridge == s.cfg.NodeName:
		s.plc.here.Add(1)
		return nil
	}
	if !s.memberURL(d.PublicURL) {
		// A member without a usable public URL cannot be redirected to;
		// this node takes the join rather than refuse it.
		s.log.Warn("placement chose a node without a valid public URL; keeping the join here", "node", d.Bridge)
		s.plc.here.Add(1)
		return nil
	}
	s.plc.away.Add(1)
	s.sendRedirect(ctx, c, d.PublicURL)
	return errPlacedElsewhere
}

// Placed returns the joins placed on this node and redirected to another
// by placement, and those refused because every eligible bridge was full.
func (s *Server) Placed() (here, away, refused uint64) {
	return s.plc.here.Load(), s.plc.away.Load(), s.plc.refused.Load()
}

// joinPin is the region pin a join is placed under: the node's
// (Config.RegionPin) and its token's regions claim (auth.go), the regions
// in both when both pin. A token that does not verify pins nothing here;
// the node that takes the join refuses it (admit). A live room's own pin
// (mesh.Room.Pin) narrows it further (place, join).
func (s *Server) joinPin(m *wire.Message) []string {
	if s.cfg.Auth == nil || m.Token == "" {
		return s.cfg.RegionPin
	}
	cl, err := s.cfg.Auth.Verify(m.Token, m.Room)
	if err != nil {
		return s.cfg.RegionPin
	}
	return intersectPins(s.cfg.RegionPin, cl.Regions)
}

// noRegion is the pin of a join that no region may hold (disjoint pins):
// a name no region has, so placement refuses it with ErrPinnedFull and no
// node admits it.
const noRegion = "\x00none"

// intersectPins is the pin in force under both pins a and b, where an
// empty pin allows every region: the regions in both, in a's order, or
// []string{noRegion} when they have none in common. It does not modify
// a or b.
func intersectPins(a, b []string) []string {
	switch {
	case len(b) == 0:
		return a
	case len(a) == 0:
		return b
	}
	both := make([]string, 0, len(a))
	for _, r := range a {
		if slices.Contains(b, r) && !slices.Contains(both, r) {
			both = append(both, r)
		}
	}
	if len(both) == 0 {
		return []string{noRegion}
	}
	return both
}

// joinDirectory counts a new participant on this node in the room's
// directory entry, under the join's pin: a room it creates keeps the pin
// (mesh.Room.Pin); the caller checks the room's pin in the answer.
func (s *Server) joinDirectory(ctx context.Context, key mesh.RoomKey, pin []string) (mesh.Room, bool, error) {
	if len(pin) == 0 {
		return s.cfg.Directory.Join(ctx, key, s.cfg.NodeName)
	}
	return s.cfg.Directory.JoinPinned(ctx, key, s.cfg.NodeName, pin)
}

// pinAllows reports whether a bridge of region may hold a participant
// joining under pin (empty: any region).
func pinAllows(pin []string, region string) bool {
	return len(pin) == 0 || slices.Contains(pin, region)
}

// securePage reports whether r came from an https page or over https: its
// Origin is https, the connection is TLS, or (behind a TLS-terminating
// load balancer) X-Forwarded-Proto says https. Only used to avoid sending
// such a client to an http URL it could not open; not a security check.
func securePage(r *http.Request) bool {
	return r.TLS != nil || strings.HasPrefix(r.Header.Get("Origin"), "https://") ||
		strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}
