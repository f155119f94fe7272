package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/mesh"
)

// TestClusterStatusRelayLinks: two real nodes (serve in this process) share
// a meeting whose participants entered through different nodes;
// `meshmeet cluster status` asked of either node lists its relay link to
// the other with a measured RTT, loss and bit rates, and --json carries
// the same.
func TestClusterStatusRelayLinks(t *testing.T) {
	if testing.Short() {
		t.Skip("two-node cluster with media; skipped in -short mode")
	}
	nodes := lanCluster(t, 2)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	joinAt := func(i int, tag uint32) {
		t.Helper()
		joinTalking(ctx, t, "http://"+nodes[i].http, fmt.Sprintf("n%d", i), "RelayLinkStatusRoom", fmt.Sprintf("P%d", i), tag, nil)
	}
	joinAt(0, 1)
	joinAt(1, 2)

	status := func(i int, extra ...string) (string, error) {
		app := newApp()
		var out bytes.Buffer
		app.Writer, app.ErrWriter = &out, io.Discard
		args := append([]string{"meshmeet", "cluster", "status", "--url", "http://" + nodes[i].http}, extra...)
		err := app.RunContext(ctx, args)
		return out.String(), err
	}
	for i := range 2 {
		peer := fmt.Sprintf("n%d", 1-i)
		var text string
		waitFor(t, fmt.Sprintf("n%d's cluster status lists its relay link to %s with RTT and bit rates", i, peer), func() bool {
			raw, err := status(i, "--json")
			if err != nil {
				return false
			}
			var st mesh.Status
			if json.Unmarshal([]byte(raw), &st) != nil || len(st.RelayLinks) != 1 {
				return false
			}
			l := st.RelayLinks[0]
			if l.Peer != peer || l.RTTMicros <= 0 || l.SendBps == 0 || l.RecvBps == 0 || l.Rooms != 1 || l.Loss < 0 || l.Loss > 1 {
				return false
			}
			text, err = status(i)
			return err == nil
		})
		t.Logf("cluster status of n%d:\n%s", i, text)
		_, links, ok := strings.Cut(text, fmt.Sprintf("relay links of n%d:\n", i))
		if !ok {
			t.Fatalf("no relay links section in:\n%s", text)
		}
		lines := strings.Split(strings.TrimSpace(links), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "PEER") {
			t.Fatalf("relay links section:\n%s", links)
		}
		f := strings.Fields(lines[1])
		// n1  true  0.3 ms  0.0 %  52 kb/s  50 kb/s  3  1
		if len(f) < 12 || f[0] != peer || f[3] != "ms" || f[5] != "%" || !strings.HasSuffix(f[7], "/s") || !strings.HasSuffix(f[9], "/s") {
			t.Fatalf("relay link row %q", lines[1])
		}
		if strings.Contains(text, "RelayLinkStatusRoom") {
			t.Fatal("the room name appears in cluster status")
		}
	}
}
