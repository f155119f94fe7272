package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFailoverKillLeader is TestFailoverKill with the raft leader killed:
// three voters n0, n1 and n2, each in its own region; a meeting with two
// participants on the current raft leader and two on another voter (the
// stayer). The leader is killed with SIGKILL: its participants resume on
// one of the two other voters with their resume secret while the
// directory has no leader, so the voter admits them on its own copy of the
// directory (meshmeet_signaling_admitted_without_leader_total) instead of
// making them wait for the election. Media must come back for everyone,
// and at least one admission must have gone through that path.
//
// Each run starts a new cluster (a killed voter would otherwise leave a
// two-voter cluster). MESHMEET_FAILOVER_RUNS=N makes N runs and logs the
// kill-to-media-back p50, p95 and max: the "raft leader killed" figure in
// docs/benchmarks.md. Every run logs its timeline: each participant's
// resume (node, time), media back, the new leader's election and the
// leaderless admissions per node.
func TestFailoverKillLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary: skipped under -short")
	}
	runs := failoverRuns(t)
	bin, secretFile := buildBinary(t)
	token, err := adminToken("status", secretFile)
	if err != nil {
		t.Fatal(err)
	}
	ports := &clusterPorts{}
	var times []time.Duration
	for run := 0; run < runs; run++ {
		t.Run(fmt.Sprintf("run%d", run), func(t *testing.T) {
			times = append(times, failoverLeaderOnce(t, bin, secretFile, token, ports, run == 0))
		})
		if t.Failed() {
			break
		}
	}
	logFailoverTimes(t, times)
}

// failoverLeaderOnce starts a three-voter cluster, kills its raft leader
// under a meeting and returns the kill-to-media-back time.
func failoverLeaderOnce(t *testing.T, bin, secretFile string, token []byte, ports *clusterPorts, checkRoster bool) time.Duration {
	var specs []procSpec
	metrics := map[string]string{} // node name → metrics address
	for i := range 3 {
		name := fmt.Sprintf("n%d", i)
		metrics[name] = fmt.Sprintf("127.0.0.1:%d", ports.port(t))
		specs = append(specs, procSpec{name: name, region: fmt.Sprintf("r%d", i), voter: true,
			extra: []string{"--metrics-addr", metrics[name]}})
	}
	procs, _ := startServeCluster(t, bin, secretFile, ports, specs)

	var leader string
	waitFor(t, "a raft leader with three voters", func() bool {
		st, _, err := fetchStatus(context.Background(), procs[0].url, token)
		leader = st.Leader
		return err == nil && st.Leader != "" && len(st.Voters) == 3
	})
	var victim *serveProc
	var rest []*serveProc
	for _, p := range procs {
		if p.name == leader {
			victim = p
		} else {
			rest = append(rest, p)
		}
	}
	if victim == nil {
		t.Fatalf("the raft leader %q is none of the nodes", leader)
	}
	stayer, spare := rest[0], rest[1]
	before := map[string]float64{}
	for _, p := range rest {
		before[p.name] = admittedWithoutLeader(t, metrics[p.name])
	}

	// The election, as the stayer sees it: polled from the kill on, and
	// after media is back until a new leader shows.
	var killedAt time.Time
	var newLeader string
	var elected time.Duration
	electedYet := func(ctx context.Context) bool {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, _, err := fetchStatus(sctx, stayer.url, token)
		if err == nil && st.Leader != "" && st.Leader != victim.name {
			newLeader, elected = st.Leader, time.Since(killedAt)
			return true
		}
		return false
	}
	afterKill := func(ctx context.Context, killed time.Time) {
		killedAt = killed
		for ctx.Err() == nil && !electedYet(ctx) {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	took := failoverOnce(t, stayer, victim, failoverOpts{checkRoster: checkRoster, afterKill: afterKill, others: []*serveProc{spare}})
	if newLeader == "" {
		waitFor(t, "a new raft leader", func() bool { return electedYet(context.Background()) })
	}

	var admitted []string
	total := 0.0
	for _, p := range rest {
		d := admittedWithoutLeader(t, metrics[p.name]) - before[p.name]
		total += d
		admitted = append(admitted, fmt.Sprintf("%s %v", p.name, d))
	}
	election := fmt.Sprintf("%s at +%v", newLeader, elected.Round(time.Millisecond))
	t.Logf("killed raft leader %s; new leader %s (seen by %s); admitted without leader: %s; kill to media back %v",
		victim.name, election, stayer.name, strings.Join(admitted, ", "), took.Round(time.Millisecond))
	if total < 1 {
		t.Errorf("no participant was admitted without a leader after the leader %s was killed", victim.name)
	}
	return took
}

// admittedWithoutLeader reads meshmeet_signaling_admitted_without_leader_total
// from the node whose metrics are served at addr.
func admittedWithoutLeader(t *testing.T, addr string) float64 {
	t.Helper()
	const name = "meshmeet_signaling_admitted_without_leader_total "
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %q", name, v)
			}
			return f
		}
	}
	t.Fatalf("%s/metrics lacks %s(%v)", addr, name, sc.Err())
	return 0
}
