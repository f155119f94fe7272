package main

import (
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshmeet/meshmeet/bridge"
	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/turn"
)

// TestMetricsHaveNoRoomOrParticipantLabels checks invariant 8: metrics are
// aggregate, labelled by nothing that names a room, a person or an address.
func TestMetricsHaveNoRoomOrParticipantLabels(t *testing.T) {
	reg := testMetrics(t, nil)
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n == 0 {
		t.Fatalf("gather: %d metrics, %v", n, err)
	}
	mfs, _ := reg.Gather()
	allowed := map[string]bool{"reason": true, "version": true, "outcome": true}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()] && !strings.HasPrefix(mf.GetName(), "go_") {
					t.Errorf("metric %s has label %q", mf.GetName(), l.GetName())
				}
			}
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meshmeet_participants Participants on this node.
# TYPE meshmeet_participants gauge
meshmeet_participants 0
`), "meshmeet_participants"); err != nil {
		t.Fatal(err)
	}
	// Every drop and refusal the bridge and signaling count is exported.
	names := map[string]bool{}
	reasons := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetName() == "meshmeet_bridge_dropped_packets_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					reasons[l.GetValue()] = true
				}
			}
		}
	}
	for _, want := range []string{"meshmeet_signaling_busy_refused_total", "meshmeet_signaling_source_throttled_total",
		"meshmeet_signaling_admitted_without_leader_total",
		"meshmeet_signaling_chat_refused_total", "meshmeet_signaling_chat_dropped_total", "meshmeet_signaling_chat_history_bytes",
		"meshmeet_placement_joins_total"} {
		if !names[want] {
			t.Errorf("no metric %s", want)
		}
	}
	for _, want := range []string{"queue_full", "wait_keyframe", "too_big", "malformed", "evicted", "unbound", "write_error", "nack_miss", "nack_queue_full", "unpublished", "mux_queue_full", "mux_unroutable", "mux_malformed"} {
		if !reasons[want] {
			t.Errorf("meshmeet_bridge_dropped_packets_total has no reason %q", want)
		}
	}
}

// testMetrics is the registry of a node with an idle bridge and signaling
// server and the TURN server ts (nil: none).
func testMetrics(t *testing.T, ts *turn.Server) *prometheus.Registry {
	t.Helper()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	br, err := bridge.New(bridge.Config{UDPConn: udp})
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signaling.New(signaling.Config{RoomKey: make([]byte, 32), Directory: mesh.NewLocalDirectory(), Bridge: br})
	if err != nil {
		t.Fatal(err)
	}
	return newMetrics(br, sig, ts)
}
