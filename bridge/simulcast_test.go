package bridge

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

// videoOf returns the ID of p's video track.
func videoOf(t *testing.T, r *Room, p string) string {
	t.Helper()
	for _, ti := range r.Tracks() {
		if ti.Participant == p && ti.Kind == webrtc.RTPCodecTypeVideo {
			return ti.ID
		}
	}
	t.Fatalf("no video track of %s", p)
	return ""
}

// TestRoomSimulcast runs three pion participants that each publish Opus and
// three-layer simulcast VP8 over real loopback sockets, then a late joiner,
// layer switches, pause/resume, NACK, dominant speaker and Close.
func TestRoomSimulcast(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	before := goroutines()
	b := startBridge(t)
	var log roomLog
	r := b.NewRoom("room-simulcast", log.events())
	api := clientAPI(t)
	names := []string{"alice", "bob", "carol"}
	var cs []*client
	for _, n := range names {
		c := newClient(t, api, r, n)
		c.kfEvery = 0 // keyframes only on PLI: the bridge must ask
		cs = append(cs, c)
	}
	for _, c := range cs {
		c.publish([]string{"q", "h", "f"})
	}
	for _, c := range cs {
		waitReceives(t, c, r, 4)
	}
	for _, ti := range r.Tracks() {
		if want := ti.Kind == webrtc.RTPCodecTypeVideo; ti.Simulcast != want {
			t.Errorf("track %s (%s): Simulcast = %v", ti.ID, ti.Kind, ti.Simulcast)
		}
	}
	alice, bob := cs[0], cs[1]
	bobVideo := videoOf(t, r, "bob")
	rt := alice.track(bobVideo)
	eventually(t, 10*time.Second, "alice gets bob's top layer", func() bool { return rt.layer() == 2 })

	t.Run("LayerSwitch", func(t *testing.T) {
		alice.p.SetMaxHeight(bobVideo, 180)
		eventually(t, 10*time.Second, "switch to the 180p layer", func() bool { return rt.layer() == 0 })
		pk, _, _, _ := rt.snapshot()
		eventually(t, 10*time.Second, "more packets on the low layer", func() bool {
			n, _, _, _ := rt.snapshot()
			return n > pk+10
		})
		alice.p.SetMaxHeight(bobVideo, 360)
		eventually(t, 10*time.Second, "switch to the 360p layer", func() bool { return rt.layer() == 1 })
		if gaps, _ := rt.seqGaps(); gaps != 0 {
			t.Fatalf("%d sequence gaps across layer switches", gaps)
		}
		_, _, bad, _ := rt.snapshot()
		if bad != 0 {
			t.Fatalf("%d altered packets", bad)
		}
	})

	t.Run("PauseResume", func(t *testing.T) {
		alice.p.SetMaxHeight(bobVideo, 0)
		time.Sleep(300 * time.Millisecond) // let queued packets drain
		n0, _, _, _ := rt.snapshot()
		time.Sleep(500 * time.Millisecond)
		if n1, _, _, _ := rt.snapshot(); n1 > n0+2 {
			t.Fatalf("paused track still flowing: %d -> %d packets", n0, n1)
		}
		alice.p.SetMaxHeight(bobVideo, 1080)
		eventually(t, 10*time.Second, "resume on the top layer", func() bool {
			n, _, _, _ := rt.snapshot()
			return rt.layer() == 2 && n > n0+10
		})
		if gaps, _ := rt.seqGaps(); gaps != 0 {
			t.Fatalf("%d sequence gaps across pause and resume", gaps)
		}
	})

	t.Run("REMB", func(t *testing.T) {
		// alice's estimate drops to 100 kb/s for her two video tracks:
		// only the lowest layer (about 35 kb/s here) fits.
		remb := func(bps float32) {
			t.Helper()
			var ssrcs []uint32
			alice.mu.Lock()
			for _, tr := range alice.tracks {
				ssrcs = append(ssrcs, tr.ssrc)
			}
			alice.mu.Unlock()
			if err := alice.sub.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{Bitrate: bps, SSRCs: ssrcs}}); err != nil {
				t.Fatal(err)
			}
		}
		remb(100_000)
		eventually(t, 10*time.Second, "low layer under a low estimate", func() bool { return rt.layer() == 0 })
		remb(10_000_000)
		eventually(t, 10*time.Second, "top layer again", func() bool { return rt.layer() == 2 })
		if gaps, _ := rt.seqGaps(); gaps != 0 {
			t.Fatalf("%d sequence gaps across estimate-driven switches", gaps)
		}
	})

	t.Run("NACK", func(t *testing.T) {
		_, last := rt.seqGaps()
		rtx0 := b.Stats().Retransmits
		err := alice.sub.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{
			MediaSSRC: rt.ssrc,
			Nacks:     []rtcp.NackPair{{PacketID: last - 2}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "retransmission", func() bool {
			_, _, _, dupes := rt.snapshot()
			return dupes > 0 && b.Stats().Retransmits > rtx0
		})
		_, _, bad, _ := rt.snapshot()
		if bad != 0 {
			t.Fatalf("retransmitted packet altered")
		}
	})

	t.Run("LateJoiner", func(t *testing.T) {
		dave := newClient(t, api, r, "dave")
		defer dave.close()
		// The publishers send keyframes only on PLI, so this passes only
		// if the bridge replays a recent keyframe from its cache or asks
		// for one when dave's downtracks start.
		waitReceives(t, dave, r, 6)
	})

	t.Run("DominantSpeaker", func(t *testing.T) {
		for _, c := range cs {
			c.loud.Store(90) // quiet
		}
		bob.loud.Store(20)
		eventually(t, 10*time.Second, "bob dominant", func() bool {
			log.mu.Lock()
			defer log.mu.Unlock()
			return len(log.speakers) > 0 && log.speakers[len(log.speakers)-1] == "bob"
		})
		bob.loud.Store(90)
		alice.loud.Store(15)
		eventually(t, 10*time.Second, "alice dominant", func() bool {
			log.mu.Lock()
			defer log.mu.Unlock()
			return log.speakers[len(log.speakers)-1] == "alice"
		})
		time.Sleep(500 * time.Millisecond)
		log.mu.Lock()
		n := len(log.speakers)
		log.mu.Unlock()
		if n > 4 {
			t.Errorf("DominantSpeaker called %d times for two changes", n)
		}
	})

	for _, c := range cs {
		c.close()
	}
	eventually(t, 10*time.Second, "every track unpublished", func() bool {
		pub, unpub := log.counts()
		return pub == unpub && len(r.Tracks()) == 0
	})
	r.Close()
	t.Logf("stats: %+v", b.Stats())
	b.Close()
	checkGoroutines(t, before)
}
