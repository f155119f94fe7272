package bridge

import (
	"sort"

	"github.com/pion/webrtc/v4"
)

// Last-N: in a large room each participant receives the video of the N
// participants who spoke most recently, plus the tracks it pinned, and
// (above AudioLastNMin audio publishers) hears only the AudioLastN most
// recent speakers. Audio outside that set is not queued. Video
// outside that set is paused per subscriber (layer target -1), so no packet
// is written for it and, for a track imported from another bridge, the
// demand sent upstream falls once no subscriber here wants it: the cascade
// stops carrying it.

// AudioLastN is how many of the most recent speakers a subscriber hears
// when the room has more than AudioLastNMin audio publishers; in smaller
// rooms every audio track is forwarded.
const (
	AudioLastN    = 5
	AudioLastNMin = 20
)

// DefaultLastN is the number of recent speakers whose video a subscriber
// receives when the room has more video publishers than that
// (Config.LastN's default).
const DefaultLastN = 25

// SetLastN sets the room's N (0: the bridge's Config.LastN; negative:
// forward all video). Takes effect at the next room tick.
func (r *Room) SetLastN(n int) {
	r.lastN.Store(int32(max(-1, min(n, maxLastN))))
}

// lastNValue returns the room's N: SetLastN's, else the bridge's
// Config.LastN, else DefaultLastN; negative: forward all video.
func (r *Room) lastNValue() int {
	if n := int(r.lastN.Load()); n != 0 {
		return n
	}
	n := 0
	if r.b != nil {
		n = r.b.cfg.LastN
	}
	if n == 0 {
		return DefaultLastN
	}
	return max(-1, min(n, maxLastN))
}

// Pin marks a track this participant subscribes to as pinned (always
// forwarded, whatever last-N says) or unpins it. Unknown tracks are ignored.
func (p *Participant) Pin(trackID string, pinned bool) {
	p.mu.Lock()
	dt := p.downtracks[trackID]
	p.mu.Unlock()
	if dt == nil {
		return
	}
	dt.pinned.Store(pinned)
	if !dt.video {
		return
	}
	dt.selectLayer(p.videoBudget())
}

// noteSpeakers moves the participants heard this tick (loudness at least
// speakerMin) to the front of the recency list. Owned by the room loop.
func (r *Room) noteSpeakers(loud map[string]int32) {
	for p, l := range loud {
		if l < speakerMin {
			continue
		}
		for i, q := range r.recent {
			if q == p {
				r.recent = append(r.recent[:i], r.recent[i+1:]...)
				break
			}
		}
		r.recent = append([]string{p}, r.recent...)
	}
	if len(r.recent) > 4*maxLastN {
		r.recent = r.recent[:4*maxLastN]
	}
}

// maxLastN bounds N and the recency list the room keeps.
const maxLastN = 256

// applyLastN marks every participant's video downtracks in or out of
// last-N and reruns the layer choice of those that changed. Owned by the
// room loop.
func (r *Room) applyLastN(ps []*Participant, tracks []*UpTrack) {
	n := r.lastNValue()
	publishers := map[string]bool{}
	speakers := map[string]bool{}
	for _, up := range tracks {
		if up.info.Kind == webrtc.RTPCodecTypeVideo {
			publishers[up.info.Participant] = true
		} else {
			speakers[up.info.Participant] = true
		}
	}
	allAudio := len(speakers) <= AudioLastNMin
	heard := map[string]bool{}
	for _, p := range r.recent {
		if len(heard) >= AudioLastN {
			break
		}
		if speakers[p] {
			heard[p] = true
		}
	}
	in := map[string]bool{}
	if n > 0 && len(publishers) > n {
		for _, p := range r.recent {
			if len(in) >= n {
				break
			}
			if publishers[p] {
				in[p] = true
			}
		}
		// Fill up with publishers that never spoke, in a stable order, so
		// that a quiet room still shows N tiles.
		if len(in) < n {
			rest := make([]string, 0, len(publishers))
			for p := range publishers {
				if !in[p] {
					rest = append(rest, p)
				}
			}
			sort.Strings(rest)
			for _, p := range rest {
				if len(in) >= n {
					break
				}
				in[p] = true
			}
		}
	}
	all := n < 0 || len(publishers) <= n
	for _, p := range ps {
		p.mu.Lock()
		dts := make([]*DownTrack, 0, len(p.downtracks))
		for _, dt := range p.downtracks {
			dts = append(dts, dt)
		}
		p.mu.Unlock()
		for _, dt := range dts {
			if !dt.video {
				dt.lastNOff.Store(!allAudio && !heard[dt.up.info.Participant])
				continue
			}
			off := !all && !in[dt.up.info.Participant]
			if dt.lastNOff.Swap(off) != off {
				dt.selectLayer(p.videoBudget())
			}
		}
		p.reportForwarding(dts, all)
	}
}

// fwdReport is what a participant's ParticipantEvents.Forwarding was last
// told (reportForwarding). Owned by the room loop. The zero value is "last-N
// does not limit": every video forwarded, what a client assumes at first.
type fwdReport struct {
	limited bool
	// videos: with limited, every video downtrack of the last report and
	// whether it was forwarded (in last-N or pinned).
	videos map[*DownTrack]bool
}

// forwardedByLastN reports whether last-N lets dt's packets through (in
// the set of recent speakers, or pinned).
func forwardedByLastN(dt *DownTrack) bool { return !dt.lastNOff.Load() || dt.pinned.Load() }

// reportForwarding tells p's ParticipantEvents.Forwarding which of its video
// downtracks (dts: all of them, as applyLastN just saw them) last-N
// forwards, when that differs from the last report: a recompute, a pin, a
// track removed, and (while last-N limits) any new video downtrack, so that
// a client always gets a report after it subscribed to a video. all: the
// room's last-N forwards every video (off, or no more publishers than N).
// The list holds only forwarded tracks: bounded by N publishers' videos
// plus p's pins, not by the room's size. Nothing is built when nothing
// changed. Owned by the room loop; called without locks.
func (p *Participant) reportForwarding(dts []*DownTrack, all bool) {
	if p.ev.Forwarding == nil || p.closing.Load() {
		return
	}
	f := &p.fwd
	changed := all == f.limited
	if !all && !changed {
		n := 0
		for _, dt := range dts {
			if !dt.video {
				continue
			}
			n++
			if on, ok := f.videos[dt]; !ok || on != forwardedByLastN(dt) {
				changed = true
				break
			}
		}
		changed = changed || n != len(f.videos)
	}
	if !changed {
		return
	}
	f.limited = !all
	if all {
		f.videos = nil
		p.ev.Forwarding(true, nil)
		return
	}
	var ids []string
	f.videos = make(map[*DownTrack]bool, len(f.videos))
	for _, dt := range dts {
		if !dt.video {
			continue
		}
		on := forwardedByLastN(dt)
		f.videos[dt] = on
		if on {
			ids = append(ids, dt.up.info.ID)
		}
	}
	sort.Strings(ids)
	p.ev.Forwarding(false, ids)
}
