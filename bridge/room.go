package bridge

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// roomTick is the period of the room loop: layer bitrates, layer
	// selection, keyframe re-requests and the dominant speaker.
	roomTick = 250 * time.Millisecond
	// speakerMin is the smoothed loudness (127 - dBov) a participant needs
	// to become the dominant speaker: about -70 dBov, above a quiet room.
	speakerMin = 57 * 16
	// speakerMargin is how much louder (in dB) a challenger must be than the
	// current dominant speaker, for speakerTicks ticks in a row.
	speakerMargin = 6 * 16
	speakerTicks  = 2
)

// Room routes media among the participants of one conference on this
// bridge, and to and from the tracks and subscribers the relay adds with
// Publish and Subscribe.
type Room struct {
	b   *Bridge      // static
	ev  RoomEvents   // static
	log *slog.Logger // static

	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	// mu guards the following fields.
	mu           sync.Mutex
	closed       bool
	loop         bool // loop goroutine started
	participants map[string]*Participant
	tracks       map[string]*UpTrack
	subs         map[*Subscription]struct{}

	// Owned by the room loop.
	speaker     string
	challenger  string
	challengerN int
	lastPackets map[*UpTrack]uint64
	recent      []string // participants by last speech, most recent first

	lastN atomic.Int32 // SetLastN; 0: DefaultLastN
}

// NewRoom returns a room that routes media among its participants. logID
// names the room in the bridge's logs (attribute "room"): pass the one ID
// the caller's own logs use for the meeting (signaling: mesh.RoomKey.LogID),
// never its name or conference ID.
func (b *Bridge) NewRoom(logID string, ev RoomEvents) *Room {
	r := &Room{
		b:            b,
		ev:           ev,
		log:          b.log.With("room", logID),
		participants: map[string]*Participant{},
		tracks:       map[string]*UpTrack{},
		subs:         map[*Subscription]struct{}{},
		done:         make(chan struct{}),
	}
	b.mu.Lock()
	if b.closed {
		r.closed = true
		close(r.done)
	} else {
		b.rooms[r] = struct{}{}
	}
	b.mu.Unlock()
	return r
}

// Join adds a participant. Its PeerConnections are created here.
func (r *Room) Join(id string, ev ParticipantEvents) (*Participant, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if _, ok := r.participants[id]; ok {
		r.mu.Unlock()
		return nil, ErrDuplicateParticipant
	}
	r.mu.Unlock()

	p, err := newParticipant(r, id, ev)
	if err != nil {
		return nil, err
	}

	r.mu.Lock()
	if r.closed || r.participants[id] != nil {
		closed := r.closed
		r.mu.Unlock()
		p.Close()
		if closed {
			return nil, ErrClosed
		}
		return nil, ErrDuplicateParticipant
	}
	r.participants[id] = p
	r.startLoopLocked()
	for _, up := range r.tracks {
		if up.info.Participant != id {
			p.addDownTrack(up)
		}
	}
	r.mu.Unlock()
	p.log.Debug("participant joined")
	p.negotiate()
	return p, nil
}

// startLoopLocked starts the room loop once. Called with mu held.
func (r *Room) startLoopLocked() {
	if !r.loop {
		r.loop = true
		r.wg.Add(1)
		go r.runLoop()
	}
}

// removeParticipant forgets p; called by Participant.Close.
func (r *Room) removeParticipant(p *Participant) {
	r.mu.Lock()
	if r.participants[p.id] == p {
		delete(r.participants, p.id)
	}
	r.mu.Unlock()
}

// publish adds a participant's new UpTrack to the room; called by onTrack.
func (r *Room) publish(up *UpTrack) {
	_ = r.addTrack(up)
}

// addTrack adds up to the room, subscribes every participant but its
// publisher to it, and reports it. For a track fed through Publish it
// starts the track's control goroutine.
func (r *Room) addTrack(up *UpTrack) error {
	r.mu.Lock()
	if r.closed || up.isClosed() {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.tracks[up.info.ID] != nil {
		r.mu.Unlock()
		return ErrDuplicateTrack
	}
	r.tracks[up.info.ID] = up
	if up.pub == nil {
		r.wg.Add(1)
		go up.rtcpLoop()
		r.startLoopLocked()
	}
	var subs []*Participant
	for _, p := range r.participants {
		if p != up.pub && p.id != up.info.Participant && p.addDownTrack(up) {
			subs = append(subs, p)
		}
	}
	r.mu.Unlock()
	r.log.Debug("track published", "participant", up.info.Participant, "track", up.info.ID,
		"kind", up.info.Kind.String(), "simulcast", up.info.Simulcast, "remote", up.info.Remote)
	if r.ev.TrackPublished != nil {
		r.ev.TrackPublished(up.info)
	}
	for _, p := range subs {
		p.negotiate()
	}
	return nil
}

// removeTrack forgets up; called by UpTrack.close.
func (r *Room) removeTrack(up *UpTrack) {
	r.mu.Lock()
	ok := r.tracks[up.info.ID] == up
	if ok {
		delete(r.tracks, up.info.ID)
	}
	r.mu.Unlock()
	if ok {
		r.log.Debug("track unpublished", "participant", up.info.Participant, "track", up.info.ID)
		if r.ev.TrackUnpublished != nil {
			r.ev.TrackUnpublished(up.info)
		}
	}
}

// Tracks returns the tracks currently published in the room, those fed
// through Publish included (TrackInfo.Remote).
func (r *Room) Tracks() []TrackInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TrackInfo, 0, len(r.tracks))
	for _, up := range r.tracks {
		out = append(out, up.info)
	}
	return out
}

// Close closes every participant, publication and subscription and waits
// for the room's goroutines. Idempotent.
func (r *Room) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.wg.Wait()
		return
	}
	r.closed = true
	close(r.done)
	ps := make([]*Participant, 0, len(r.participants))
	for _, p := range r.participants {
		ps = append(ps, p)
	}
	var remote []*UpTrack
	for _, up := range r.tracks {
		if up.pub == nil {
			remote = append(remote, up)
		}
	}
	subs := make([]*Subscription, 0, len(r.subs))
	for s := range r.subs {
		subs = append(subs, s)
	}
	r.mu.Unlock()
	for _, p := range ps {
		p.Close()
	}
	for _, up := range remote {
		up.close()
	}
	for _, s := range subs {
		s.Close()
	}
	r.wg.Wait()
	r.b.removeRoom(r)
}

// runLoop measures layer bitrates, picks layers for every participant's
// subscriptions, re-requests keyframes that subscribers (participants and
// sinks) still wait for, and tracks the dominant speaker.
func (r *Room) runLoop() {
	defer r.wg.Done()
	t := time.NewTicker(roomTick)
	defer t.Stop()
	r.lastPackets = map[*UpTrack]uint64{}
	var lastSR time.Time
	for {
		var now time.Time
		select {
		case <-r.done:
			return
		case now = <-t.C:
		}
		r.mu.Lock()
		tracks := make([]*UpTrack, 0, len(r.tracks))
		for _, up := range r.tracks {
			tracks = append(tracks, up)
		}
		ps := make([]*Participant, 0, len(r.participants))
		for _, p := range r.participants {
			ps = append(ps, p)
		}
		subs := make([]*DownTrack, 0, len(r.subs))
		for s := range r.subs {
			subs = append(subs, s.dt)
		}
		r.mu.Unlock()

		for _, up := range tracks {
			for _, l := range up.layers {
				b := l.bytes.Load()
				rate := int64(b-l.lastBytes) * 8 * int64(time.Second/roomTick)
				l.lastBytes = b
				old := l.bitrate.Load()
				if old == 0 {
					l.bitrate.Store(rate)
				} else {
					l.bitrate.Store(old + (rate-old)/4)
				}
			}
		}
		for _, p := range ps {
			p.selectLayers()
		}
		for _, dt := range subs {
			if dt.needsKeyframe() {
				dt.up.requestKeyframe(int(dt.target.Load()))
			}
		}
		r.updateSpeaker(tracks)
		r.applyLastN(ps, tracks)
		if now.Sub(lastSR) >= srInterval-roomTick/2 {
			lastSR = now
			now = time.Now() // the tick's time may be late
			for _, p := range ps {
				p.sendSenderReports(now)
			}
		}
	}
}

// updateSpeaker picks the dominant speaker from the audio tracks' smoothed
// levels (the highest of each since the last tick), with hysteresis, and
// reports changes only.
func (r *Room) updateSpeaker(tracks []*UpTrack) {
	loud := map[string]int32{}
	seen := map[*UpTrack]bool{}
	for _, up := range tracks {
		if up.levelExtID == 0 {
			continue
		}
		seen[up] = true
		n := up.packets.Load()
		lvl := up.peak.Swap(0)
		if n == r.lastPackets[up] {
			lvl = 0 // no packet since the last tick: silent
			up.level.Store(0)
		}
		r.lastPackets[up] = n
		if lvl > loud[up.info.Participant] {
			loud[up.info.Participant] = lvl
		}
	}
	for up := range r.lastPackets {
		if !seen[up] {
			delete(r.lastPackets, up)
		}
	}
	r.noteSpeakers(loud)
	best, bestLvl := "", int32(0)
	for p, l := range loud {
		if l > bestLvl || (l == bestLvl && p < best) {
			best, bestLvl = p, l
		}
	}
	if best == "" || best == r.speaker || bestLvl < speakerMin {
		r.challenger, r.challengerN = "", 0
		return
	}
	if r.speaker != "" && bestLvl < loud[r.speaker]+speakerMargin {
		r.challenger, r.challengerN = "", 0
		return
	}
	if best != r.challenger {
		r.challenger, r.challengerN = best, 0
	}
	r.challengerN++
	if r.speaker != "" && r.challengerN < speakerTicks {
		return
	}
	r.speaker = best
	r.challenger, r.challengerN = "", 0
	if r.ev.DominantSpeaker != nil {
		r.ev.DominantSpeaker(best)
	}
}
