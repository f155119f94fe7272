package main

import (
	"net"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/relay"
)

// TestRelayMetrics: the relay's aggregate counters are exported under the
// names the bench reads, with direction and reason labels only (never a
// room or a node).
func TestRelayMetrics(t *testing.T) {
	pki, err := mesh.NewClusterPKI(mesh.DeriveKeys(mesh.NewSecret()), "n1")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	srv, cli := pki.RelayTLS()
	rel, err := relay.New(relay.Config{PacketConn: pc, ServerTLS: srv, ClientTLS: cli, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rel.Close() })
	reg := withRelayMetrics(testMetrics(t, nil), rel.Stats)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meshmeet_relay_links Relay links to other nodes up now.
# TYPE meshmeet_relay_links gauge
meshmeet_relay_links 0
# HELP meshmeet_relay_datagrams_total Relay datagrams (one RTP packet each) sent (out) and received (in).
# TYPE meshmeet_relay_datagrams_total counter
meshmeet_relay_datagrams_total{direction="in"} 0
meshmeet_relay_datagrams_total{direction="out"} 0
# HELP meshmeet_relay_bytes_total Bytes of those datagrams (relay frame header and RTP packet; QUIC overhead excluded).
# TYPE meshmeet_relay_bytes_total counter
meshmeet_relay_bytes_total{direction="in"} 0
meshmeet_relay_bytes_total{direction="out"} 0
`), "meshmeet_relay_links", "meshmeet_relay_datagrams_total", "meshmeet_relay_bytes_total"); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "meshmeet_relay_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() != "direction" && l.GetName() != "reason" {
					t.Errorf("%s has label %q", mf.GetName(), l.GetName())
				}
				if mf.GetName() == "meshmeet_relay_drops_total" {
					reasons[l.GetValue()] = true
				}
			}
		}
	}
	for _, want := range []string{"queue_full", "no_link", "too_large", "malformed", "unknown_track", "not_wanted"} {
		if !reasons[want] {
			t.Errorf("meshmeet_relay_drops_total has no reason %q (got %v)", want, reasons)
		}
	}
}
