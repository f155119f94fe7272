package bridge

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

type roomLog struct {
	mu          sync.Mutex
	published   []TrackInfo
	unpublished []TrackInfo
	speakers    []string
}

func (l *roomLog) events() RoomEvents {
	return RoomEvents{
		TrackPublished: func(ti TrackInfo) {
			l.mu.Lock()
			l.published = append(l.published, ti)
			l.mu.Unlock()
		},
		TrackUnpublished: func(ti TrackInfo) {
			l.mu.Lock()
			l.unpublished = append(l.unpublished, ti)
			l.mu.Unlock()
		},
		DominantSpeaker: func(p string) {
			l.mu.Lock()
			l.speakers = append(l.speakers, p)
			l.mu.Unlock()
		},
	}
}

func (l *roomLog) counts() (pub, unpub int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.published), len(l.unpublished)
}

// waitReceives waits until c receives every track of the room not
// published by c, with payloads intact, and at least one keyframe of each
// video track.
func waitReceives(t *testing.T, c *client, r *Room, wantTracks int) {
	t.Helper()
	var status string
	defer func() {
		if t.Failed() {
			t.Logf("%s: last status: %s; sub PC %s (client %s, ICE %s/%s), pub PC %s; stats %+v", c.id, status,
				c.p.subPC.ConnectionState(), c.sub.ConnectionState(), c.p.subPC.ICEConnectionState(), c.sub.ICEConnectionState(),
				c.p.pubPC.ConnectionState(), r.b.Stats())
		}
	}()
	eventually(t, 20*time.Second, c.id+" receives every track", func() bool {
		n := 0
		for _, ti := range r.Tracks() {
			if ti.Participant == c.id {
				continue
			}
			rt := c.track(ti.ID)
			if rt == nil {
				status = "no track " + ti.ID + " of " + ti.Participant
				return false
			}
			if rt.stream != ti.Participant {
				t.Fatalf("track %s arrived in stream %q, want publisher %q", ti.ID, rt.stream, ti.Participant)
			}
			pk, kfs, bad, _ := rt.snapshot()
			if bad > 0 {
				t.Fatalf("%s: %d packets of track %s with altered payload", c.id, bad, ti.ID)
			}
			if pk < 10 || (ti.Kind == webrtc.RTPCodecTypeVideo && kfs == 0) {
				status = fmt.Sprintf("track %s of %s: %d packets, %d keyframes", ti.ID, ti.Participant, pk, kfs)
				return false
			}
			n++
		}
		status = fmt.Sprintf("%d tracks of %d", n, wantTracks)
		return n == wantTracks
	})
}

func TestTwoParticipantsPlain(t *testing.T) {
	before := goroutines()
	b := startBridge(t)
	var log roomLog
	r := b.NewRoom("room-1", log.events())
	api := clientAPI(t)
	a := newClient(t, api, r, "alice")
	bob := newClient(t, api, r, "bob")
	a.publish(nil)
	bob.publish(nil)
	waitReceives(t, a, r, 2)
	waitReceives(t, bob, r, 2)
	if pub, _ := log.counts(); pub != 4 {
		t.Fatalf("TrackPublished %d times, want 4", pub)
	}
	for _, ti := range r.Tracks() {
		if ti.Simulcast {
			t.Errorf("track %s: Simulcast = true for a single-layer track", ti.ID)
		}
	}
	a.close()
	eventually(t, 10*time.Second, "alice's tracks unpublished", func() bool {
		_, unpub := log.counts()
		return unpub == 2 && len(r.Tracks()) == 2
	})
	bob.close()
	r.Close()
	st := b.Stats()
	t.Logf("stats: %+v", st)
	if st.ForwardedPackets == 0 || st.ForwardedBytes == 0 {
		t.Errorf("stats: %+v", st)
	}
	b.Close()
	checkGoroutines(t, before)
}
