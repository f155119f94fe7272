package bridge

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loopRelay joins two rooms of one bridge the way the relay joins two
// bridges, without QUIC: each track published in from (and not itself
// imported) is published in to with Room.Publish; the imported track's
// demand opens Room.Subscribe sinks in from, one per wanted layer, whose
// packets are written into the publication; keyframe and retransmission
// requests go back to the subscriptions. Every lossEvery-th packet is lost
// on the way the first time, so that only the seam's gap detection and
// Subscription.Retransmit can repair it.
type loopRelay struct {
	t         *testing.T
	from, to  *Room
	lossEvery int

	mu      sync.Mutex
	imports map[string]*loopImport // by track ID
	wg      sync.WaitGroup

	repaired atomic.Int64 // lost packets that arrived on a second try
}

func (rl *loopRelay) events(extra RoomEvents) RoomEvents {
	ev := extra
	ev.TrackPublished = func(ti TrackInfo) {
		if extra.TrackPublished != nil {
			extra.TrackPublished(ti)
		}
		if ti.Remote {
			return // imported: never exported again (loop prevention)
		}
		rl.wg.Add(1)
		go func() { // RoomEvents must not block
			defer rl.wg.Done()
			rl.export(ti)
		}()
	}
	ev.TrackUnpublished = func(ti TrackInfo) {
		if extra.TrackUnpublished != nil {
			extra.TrackUnpublished(ti)
		}
		rl.mu.Lock()
		imp := rl.imports[ti.ID]
		delete(rl.imports, ti.ID)
		rl.mu.Unlock()
		if imp != nil {
			rl.wg.Add(1)
			go func() {
				defer rl.wg.Done()
				imp.close()
			}()
		}
	}
	return ev
}

// refresh passes the layers' figures on, as a relay does periodically.
func (rl *loopRelay) refresh() {
	rl.mu.Lock()
	imps := make([]*loopImport, 0, len(rl.imports))
	for _, imp := range rl.imports {
		imps = append(imps, imp)
	}
	rl.mu.Unlock()
	for _, imp := range imps {
		params, err := rl.from.TrackParams(imp.trackID)
		pub := imp.pub.Load()
		if err != nil || pub == nil {
			continue
		}
		for i, l := range params.Layers {
			pub.SetLayerInfo(i, l)
		}
	}
}

// run refreshes every 250 ms until done is closed.
func (rl *loopRelay) run(done <-chan struct{}) {
	rl.wg.Add(1)
	go func() {
		defer rl.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rl.refresh()
			}
		}
	}()
}

func (rl *loopRelay) export(ti TrackInfo) {
	params, err := rl.from.TrackParams(ti.ID)
	if err != nil {
		return // gone meanwhile
	}
	imp := &loopImport{rl: rl, trackID: ti.ID, subs: map[int]*Subscription{}, lost: map[uint32]bool{}}
	pub, err := rl.to.Publish(params, imp)
	if err != nil {
		rl.t.Errorf("Publish %s: %v", ti.ID, err)
		return
	}
	imp.pub.Store(pub)
	rl.mu.Lock()
	rl.imports[ti.ID] = imp
	rl.mu.Unlock()
}

// loopImport is the TrackSource of one imported track.
type loopImport struct {
	rl      *loopRelay
	trackID string
	// pub is set once Publish returns; the source may be called before.
	pub    atomic.Pointer[Publication]
	feedMu sync.Mutex // WriteRTP calls of the layers' sinks must not overlap

	mu   sync.Mutex
	subs map[int]*Subscription // by layer
	n    int                   // packets seen, for the loss pattern
	lost map[uint32]bool       // layer<<16 | seq lost once
}

func (imp *loopImport) SetDemand(d Demand) {
	imp.mu.Lock()
	defer imp.mu.Unlock()
	for layer := 0; layer < maxLayers; layer++ {
		sub := imp.subs[layer]
		switch {
		case d.Has(layer) && sub == nil:
			s, err := imp.rl.from.Subscribe(imp.trackID, layer, &loopSink{imp: imp})
			if err == nil {
				imp.subs[layer] = s
			}
		case !d.Has(layer) && sub != nil:
			delete(imp.subs, layer)
			imp.rl.wg.Add(1)
			go func() { // Close waits for the writer: not from a source method
				defer imp.rl.wg.Done()
				sub.Close()
			}()
		}
	}
}

func (imp *loopImport) RequestKeyframe(layer int) {
	imp.mu.Lock()
	s := imp.subs[layer]
	imp.mu.Unlock()
	if s != nil {
		s.RequestKeyframe()
	}
}

func (imp *loopImport) RequestRetransmit(layer int, seqs []uint16) {
	imp.mu.Lock()
	s := imp.subs[layer]
	imp.mu.Unlock()
	if s != nil {
		s.Retransmit(layer, seqs)
	}
}

func (imp *loopImport) close() {
	if p := imp.pub.Load(); p != nil {
		p.Close()
	}
	imp.mu.Lock()
	subs := imp.subs
	imp.subs = map[int]*Subscription{}
	imp.mu.Unlock()
	for _, s := range subs {
		s.Close()
	}
}

// loopSink carries one subscription's packets into the publication.
type loopSink struct{ imp *loopImport }

func (s *loopSink) WriteRTP(layer int, pkt []byte) {
	imp := s.imp
	key := uint32(layer)<<16 | uint32(binary.BigEndian.Uint16(pkt[2:]))
	imp.mu.Lock()
	if imp.lost[key] {
		delete(imp.lost, key)
		imp.rl.repaired.Add(1)
	} else if imp.n++; imp.rl.lossEvery > 0 && imp.n%imp.rl.lossEvery == 0 {
		imp.lost[key] = true
		imp.mu.Unlock()
		return // lost on the way
	}
	imp.mu.Unlock()
	pub := imp.pub.Load()
	if pub == nil {
		return
	}
	imp.feedMu.Lock()
	pub.WriteRTP(layer, pkt)
	imp.feedMu.Unlock()
}

// TestRelaySeamTwoRooms: a participant publishes Opus and three-layer
// simulcast VP8 in room A; a participant of room B receives and decodes
// both through an in-process relay made of Room.Subscribe and
// Room.Publish, with packets lost on the way and repaired through the
// seam's retransmission requests, keyframes only on request (the request
// travels B → relay → A → publisher), and no track exported back.
func TestRelaySeamTwoRooms(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	before := goroutines()
	b := startBridge(t)
	ab := &loopRelay{t: t, lossEvery: 50, imports: map[string]*loopImport{}}
	ba := &loopRelay{t: t, imports: map[string]*loopImport{}}
	var logA, logB roomLog
	rA := b.NewRoom("a", ab.events(logA.events()))
	rB := b.NewRoom("b", ba.events(logB.events()))
	ab.from, ab.to = rA, rB
	ba.from, ba.to = rB, rA
	stop := make(chan struct{})
	ab.run(stop)
	ba.run(stop)

	api := clientAPI(t)
	alice := newClient(t, api, rA, "alice")
	alice.kfEvery = 0 // keyframes only when asked
	bob := newClient(t, api, rB, "bob")
	alice.publish([]string{"q", "h", "f"})
	waitReceives(t, bob, rB, 2)

	tracksB := rB.Tracks()
	for _, ti := range tracksB {
		if !ti.Remote || ti.Participant != "alice" {
			t.Fatalf("room B track %+v: want alice's, Remote", ti)
		}
	}
	if ti := videoOf(t, rB, "alice"); ti == "" {
		t.Fatal("no video")
	}
	rt := bob.track(videoOf(t, rB, "alice"))
	eventually(t, 10*time.Second, "bob gets the top layer", func() bool { return rt.layer() == 2 })
	eventually(t, 20*time.Second, "lost packets repaired", func() bool { return ab.repaired.Load() >= 5 })
	for _, ti := range rA.Tracks() {
		if ti.Remote {
			t.Fatalf("room A has an imported track %+v: exported back", ti)
		}
	}
	if st := b.Stats(); st.RetransmitRequests == 0 || st.Retransmits == 0 {
		t.Fatalf("stats %+v: no retransmission through the seam", st)
	}
	_, _, bad, _ := rt.snapshot()
	if bad != 0 {
		t.Fatalf("%d altered packets", bad)
	}

	// Bob pauses the video: nobody in B wants it, A stops sending it.
	bob.p.SetMaxHeight(videoOf(t, rB, "alice"), 0)
	ab.mu.Lock()
	imp := ab.imports[videoOf(t, rA, "alice")]
	ab.mu.Unlock()
	eventually(t, 10*time.Second, "video subscriptions closed in A", func() bool {
		imp.mu.Lock()
		defer imp.mu.Unlock()
		return len(imp.subs) == 0
	})

	alice.close()
	eventually(t, 10*time.Second, "alice's tracks gone from B", func() bool { return len(rB.Tracks()) == 0 })
	bob.close()
	close(stop)
	ab.wg.Wait()
	ba.wg.Wait()
	rA.Close()
	rB.Close()
	if pub, unpub := logB.counts(); pub != 2 || unpub != 2 {
		t.Errorf("room B: %d published, %d unpublished, want 2, 2", pub, unpub)
	}
	b.Close()
	checkGoroutines(t, before)
}
