package bridge

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestChurn: participants join, publish and leave concurrently while
// others stay; renegotiation keeps up (one sub offer at a time), everyone
// ends up receiving exactly the current tracks, and nothing leaks.
func TestChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	before := goroutines()
	b := startBridge(t)
	var log roomLog
	r := b.NewRoom("room-churn", log.events())
	api := clientAPI(t)
	var stable []*client
	for i := 0; i < 3; i++ {
		c := newClient(t, api, r, fmt.Sprintf("stable%d", i))
		c.kfEvery = 25
		c.publish(nil)
		stable = append(stable, c)
	}
	for round := 0; round < 3; round++ {
		var (
			mu      sync.Mutex
			guests  []*client
			joining sync.WaitGroup
		)
		for i := 0; i < 2; i++ {
			joining.Add(1)
			go func() {
				defer joining.Done()
				c := newClient(t, api, r, fmt.Sprintf("guest%d-%d", round, i))
				c.kfEvery = 25
				c.publish(nil)
				mu.Lock()
				guests = append(guests, c)
				mu.Unlock()
			}()
		}
		joining.Wait()
		for _, c := range append(append([]*client(nil), stable...), guests...) {
			waitReceives(t, c, r, 8)
		}
		var leaving sync.WaitGroup
		for _, c := range guests {
			leaving.Add(1)
			go func() {
				defer leaving.Done()
				c.close()
			}()
		}
		leaving.Wait()
		eventually(t, 10*time.Second, "guests' tracks gone", func() bool { return len(r.Tracks()) == 6 })
	}
	for _, c := range stable {
		waitReceives(t, c, r, 4)
		c.p.negMu.Lock()
		n := len(c.p.subPC.GetTransceivers())
		c.p.negMu.Unlock()
		if n > 8 {
			t.Errorf("%s: %d transceivers after three rounds of two guests, want at most 8 (m-lines reused)", c.id, n)
		}
	}
	for _, c := range stable {
		c.close()
	}
	r.Close()
	if pub, unpub := log.counts(); pub != 18 || unpub != 18 {
		t.Errorf("published %d, unpublished %d, want 18 and 18", pub, unpub)
	}
	b.Close()
	checkGoroutines(t, before)
}
