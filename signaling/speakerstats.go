package signaling

import (
	"time"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// Speaker stats: how long each participant of the meeting has been the
// dominant speaker, as this node's bridge picks it from the audio levels
// of every audio track it forwards (local and imported from the other
// bridges, so each bridge of a meeting counts much the same). A client
// asks with speaker-stats and gets the list; like the chat, the stats live
// in the node's side of the room and die with it. As in Jitsi Meet, the
// time counts from the moment a participant becomes the dominant speaker
// until another does.

// speakerStats is a room's speaking times. Guarded by room.mu.
type speakerStats struct {
	total map[string]time.Duration // by participant ID, at most wire.MaxSpeakerStats
	order []string                 // participant IDs in first-spoken order
	cur   string                   // the current dominant speaker
	since time.Time                // when cur became it
}

// noteSpeakerLocked credits the outgoing dominant speaker with its time
// and starts counting id's. r.mu is held.
func (r *room) noteSpeakerLocked(id string, now time.Time) {
	st := &r.talk
	st.creditLocked(now)
	st.cur, st.since = id, now
}

func (st *speakerStats) creditLocked(now time.Time) {
	if st.cur == "" {
		return
	}
	if st.total == nil {
		st.total = map[string]time.Duration{}
	}
	if _, ok := st.total[st.cur]; !ok {
		if len(st.order) >= wire.MaxSpeakerStats {
			return
		}
		st.order = append(st.order, st.cur)
	}
	st.total[st.cur] += now.Sub(st.since)
	st.since = now
}

// speakerStatsLocked is the speaker-stats answer: every participant that
// has spoken, with the current speaker's time up to now. r.mu is held.
func (r *room) speakerStatsLocked(now time.Time) *wire.Message {
	st := &r.talk
	st.creditLocked(now)
	m := &wire.Message{Type: wire.TypeSpeakerStats, Stats: []wire.SpeakerStat{}}
	for _, id := range st.order {
		m.Stats = append(m.Stats, wire.SpeakerStat{Participant: id, MS: st.total[id].Milliseconds()})
	}
	return m
}

// speakerStats answers p's speaker-stats request.
func (r *room) speakerStats(p *participant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p.send(r.speakerStatsLocked(time.Now()))
}
