package main

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/urfave/cli/v2"
)

// TestRemoteCandidatePolicy: the bridge's remote candidate policy is the
// TURN deny list, every IPv4-in-IPv6 form included, opened by
// --turn-allow-peer.
func TestRemoteCandidatePolicy(t *testing.T) {
	cfg := &Config{}
	cfg.TURN.AllowPeers = *cli.NewStringSlice("10.20.0.0/16")
	allow, err := remoteCandidatePolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true},
		{"2001:4860:4860::8888", true},
		{"10.20.3.4", true}, // opened by --turn-allow-peer
		{"10.1.2.3", false},
		{"127.0.0.1", false}, // the bridge itself allows its own loopback address
		{"169.254.169.254", false},
		{"::ffff:10.1.2.3", false},
		{"::ffff:169.254.169.254", false},
		{"2002:a01:203::1", false},  // 6to4 of 10.1.2.3
		{"64:ff9b::a01:203", false}, // NAT64 of 10.1.2.3
		{"fd00::2", false},
		{"fe80::1", false},
		{"224.0.0.1", false},
	} {
		if got := allow(netip.MustParseAddr(tc.ip)); got != tc.want {
			t.Errorf("%s: allowed %v, want %v", tc.ip, got, tc.want)
		}
	}
	cfg.TURN.AllowPeers = *cli.NewStringSlice("not-a-range")
	if _, err := remoteCandidatePolicy(cfg); err == nil {
		t.Error("a bad --turn-allow-peer was accepted")
	}
}

// TestRefusedCandidatesMetric: the bridge's refused candidates are exported
// by reason, as docs/operations.md lists them.
func TestRefusedCandidatesMetric(t *testing.T) {
	reg := testMetrics(t, nil)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP meshmeet_bridge_refused_candidates_total Remote ICE candidates the bridge refused, by reason.
# TYPE meshmeet_bridge_refused_candidates_total counter
meshmeet_bridge_refused_candidates_total{reason="denied"} 0
meshmeet_bridge_refused_candidates_total{reason="malformed"} 0
meshmeet_bridge_refused_candidates_total{reason="over_limit"} 0
`), "meshmeet_bridge_refused_candidates_total"); err != nil {
		t.Fatal(err)
	}
}
