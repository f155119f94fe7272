package bridge

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// tickerLoops counts the goroutines of pion's NACK generator and
// receiver-report loops.
func tickerLoops() (nack, rr int) {
	buf := make([]byte, 1<<22)
	s := string(buf[:runtime.Stack(buf, true)])
	return strings.Count(s, "nack.(*GeneratorInterceptor).loop"), strings.Count(s, "report.(*ReceiverInterceptor).loop")
}

// TestLazyRTCPTickers: a participant that publishes nothing runs no NACK
// generator or receiver-report ticker (they used to start with every
// publisher PeerConnection); one that publishes does, and its lost
// packets are still NACKed (TestBridgeNACKsLostPackets).
func TestLazyRTCPTickers(t *testing.T) {
	b := startBridge(t)
	r := b.NewRoom("lazy", RoomEvents{})
	defer r.Close()
	nack0, rr0 := tickerLoops()
	api := clientAPI(t)
	pub := newClient(t, api, r, "alice")
	var listeners []*client
	for _, id := range []string{"bob", "cy", "dee"} {
		listeners = append(listeners, newClient(t, api, r, id))
	}
	pub.publish(nil)
	for _, l := range listeners {
		waitReceives(t, l, r, 2)
	}
	// The publisher's loops start with its first stream; give them a
	// moment after media flows (not a timed assertion: the counts are
	// checked for exact values, and only publishers ever get them).
	eventually(t, 10*time.Second, "the publisher's loops", func() bool {
		n, rr := tickerLoops()
		return n-nack0 >= 1 && rr-rr0 >= 1
	})
	n, rr := tickerLoops()
	if n-nack0 != 1 || rr-rr0 != 1 {
		t.Fatalf("%d NACK generator and %d receiver-report loops for 1 publisher and 3 listeners, want 1 and 1", n-nack0, rr-rr0)
	}
}
