package client

import "github.com/meshmeet/meshmeet/signaling/wire"

// fwdState is what the client knows of the room's last-N for its videos
// (wire.TypeForwarding). The rule: a video track is paused when the
// latest forwarding message limits (all false), does not list it, and
// came after the client learned of the track (welcome or track-published).
// A track learned of after the latest forwarding counts as forwarded until
// the next one, which the server sends after every new video subscription.
type fwdState struct {
	limited bool              // the latest forwarding had all false
	video   map[string]bool   // with limited: the forwarded videos
	n       uint64            // forwarding messages since the welcome
	learned map[string]uint64 // video track ID → n when it was learned of
}

// welcomeForwarding resets the state for welcome m: everything forwarded,
// its tracks learned of now.
func (c *Client) welcomeForwarding(m *wire.Message) {
	st := fwdState{learned: map[string]uint64{}}
	for _, t := range m.Tracks {
		if t.Kind == wire.KindVideo {
			st.learned[t.ID] = 0
		}
	}
	c.fwdMu.Lock()
	c.fwd = st
	c.fwdMu.Unlock()
}

// noteForwarding applies a forwarding, track-published or
// track-unpublished message.
func (c *Client) noteForwarding(m *wire.Message) {
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	st := &c.fwd
	if st.learned == nil {
		st.learned = map[string]uint64{}
	}
	switch m.Type {
	case wire.TypeForwarding:
		st.n++
		st.limited = !m.All
		st.video = make(map[string]bool, len(m.Video))
		for _, id := range m.Video {
			st.video[id] = true
		}
	case wire.TypeTrackPublished:
		if m.Track != nil && m.Track.Kind == wire.KindVideo {
			st.learned[m.Track.ID] = st.n
		}
	case wire.TypeTrackUnpublished:
		if m.Track != nil {
			delete(st.learned, m.Track.ID)
		}
	}
}

// pausedLocked is Paused with fwdMu held.
func (st *fwdState) pausedLocked(trackID string) bool {
	at, ok := st.learned[trackID]
	return ok && st.limited && !st.video[trackID] && at < st.n
}

// Paused reports whether the room's last-N pauses the video track with
// this ID for this client, by fwdState's rule: the server sends none of
// its packets, as meant, until it resumes.
func (c *Client) Paused(trackID string) bool {
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	return c.fwd.pausedLocked(trackID)
}

// PausedVideos returns the IDs of the video tracks Paused reports now.
func (c *Client) PausedVideos() []string {
	c.fwdMu.Lock()
	defer c.fwdMu.Unlock()
	var ids []string
	for id := range c.fwd.learned {
		if c.fwd.pausedLocked(id) {
			ids = append(ids, id)
		}
	}
	return ids
}
