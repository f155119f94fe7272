package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/mesh"
)

// Shared setup for the tests that run several serve nodes: in this process
// (startServeNodes and its wrappers) or as subprocesses of the built binary
// (buildBinary, in drain_test.go).

// nodeSpec is one in-process serve node: its --node-name, --region and
// flags added after the common ones.
type nodeSpec struct {
	name, region string
	extra        []string
}

// servedNode is a running in-process serve node.
type servedNode struct {
	http string             // host:port of its HTTP listener
	stop context.CancelFunc // shuts it down (Cleanup does too)
}

// regionSpecs is n nodes named n<i> in region-<i>, each with extra.
func regionSpecs(n int, extra ...string) []nodeSpec {
	specs := make([]nodeSpec, n)
	for i := range specs {
		specs[i] = nodeSpec{name: fmt.Sprintf("n%d", i), region: fmt.Sprintf("region-%d", i), extra: extra}
	}
	return specs
}

// startServeNodes runs one serve node per spec in this process, forming one
// cluster under a fresh cluster secret: every node a raft voter
// (--bootstrap-expect len(specs)), gossip, raft and the relay on loopback,
// each node joining all the others, with the given --gossip-profile, no
// TURN and --log-level error unless the spec's extra flags say otherwise.
// It does not wait for readiness. Cleanup stops every node.
func startServeNodes(t *testing.T, profile string, specs []nodeSpec) []servedNode {
	t.Helper()
	t.Setenv(envClusterSecret, mesh.NewSecret().Encode())
	taken := map[int]bool{}
	type nodeAddrs struct{ http, gossip string }
	var addrs []nodeAddrs
	for range specs {
		addrs = append(addrs, nodeAddrs{
			http:   fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			gossip: fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
		})
	}
	nodes := make([]servedNode, len(specs))
	var wg sync.WaitGroup
	var parsing sync.Mutex
	for i, a := range addrs {
		var join []string
		for j, b := range addrs {
			if j != i {
				join = append(join, b.gossip)
			}
		}
		args := []string{"meshmeet", "serve",
			"--node-name", specs[i].name, "--region", specs[i].region,
			"--http-addr", a.http,
			"--rtc-port", fmt.Sprint(clusterFreePort(t, taken)),
			"--gossip-addr", a.gossip,
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			"--relay-addr", fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			"--raft-voter", "--bootstrap-expect", fmt.Sprint(len(specs)),
			"--gossip-profile", profile, "--no-turn", "--log-level", "error",
		}
		if len(join) > 0 {
			args = append(args, "--join", strings.Join(join, ","))
		}
		args = append(args, specs[i].extra...)
		ctx, cancel := context.WithCancel(context.Background())
		nodes[i] = servedNode{http: a.http, stop: cancel}
		app := newApp()
		app.Writer = io.Discard
		// urfave/cli parses flags through package-level state (its help
		// flag): the nodes parse one at a time, the next once serve's
		// flags are parsed.
		parsing.Lock()
		var once sync.Once
		parsed := func() { once.Do(parsing.Unlock) }
		for _, c := range app.Commands {
			if c.Name == "serve" {
				c.Before = func(*cli.Context) error { parsed(); return nil }
			}
		}
		name := specs[i].name
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer parsed()
			if err := app.RunContext(ctx, args); err != nil {
				t.Errorf("node %s: %v", name, err)
			}
		}()
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
		wg.Wait()
	})
	return nodes
}

// lanCluster runs n nodes (n<i> in region-<i>, --gossip-profile lan) with
// extra flags each and returns their HTTP addresses; it does not wait for
// readiness.
func lanCluster(t *testing.T, n int, extra ...string) []servedNode {
	t.Helper()
	return startServeNodes(t, "lan", regionSpecs(n, extra...))
}

// httpAddrs is the nodes' HTTP addresses.
func httpAddrs(nodes []servedNode) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.http
	}
	return out
}

// serveNodes starts n in-process serve nodes forming one cluster, every
// one a raft voter, node i in region-i, with extra flags; it returns their
// HTTP addresses once each answers /readyz with 200. Cleanup stops them.
func serveNodes(t *testing.T, n int, extra ...string) []string {
	t.Helper()
	out := httpAddrs(lanCluster(t, n, extra...))
	for _, a := range out {
		waitFor(t, "node ready", func() bool {
			resp, err := http.Get("http://" + a + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
	}
	return out
}

// joinUntil joins room at url with opts, trying again every 200 ms until a
// join works (until the node listens and the directory has a leader, joins
// fail: refused, or unavailable) or ctx ends; who names the node in the
// failure. Cleanup closes the client.
func joinUntil(ctx context.Context, t *testing.T, url, who, room string, opts client.Options) *client.Client {
	t.Helper()
	for {
		c, err := client.Join(ctx, url, room, opts)
		if err == nil {
			t.Cleanup(c.Close)
			return c
		}
		if ctx.Err() != nil {
			t.Fatalf("join at %s: %v", who, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// joinTalking is joinUntil as name, with a talking audio track (stream
// s<tag>, synthesised once joined) unless tag is 0, and got recording the
// tracks received unless it is nil.
func joinTalking(ctx context.Context, t *testing.T, url, who, room, name string, tag uint32, got *audioLog) *client.Client {
	t.Helper()
	opts := client.Options{Name: name}
	var audio *webrtc.TrackLocalStaticRTP
	if tag != 0 {
		var err error
		if audio, err = client.NewAudio("a", fmt.Sprintf("s%d", tag)); err != nil {
			t.Fatal(err)
		}
		opts.Tracks = []webrtc.TrackLocal{audio}
	}
	if got != nil {
		opts.OnTrack = got.onTrack
	}
	c := joinUntil(ctx, t, url, who, room, opts)
	if audio != nil {
		src := &client.Synth{Sender: tag, Ext: c.Ext}
		go src.RunTalk(ctx, audio, client.AudioOptions{TalkBytes: 80, SilenceBytes: 80, Talk: 1})
	}
	return c
}
