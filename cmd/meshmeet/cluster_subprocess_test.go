package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// clusterFreePort returns a port free for TCP and UDP on 127.0.0.1.
func clusterFreePort(t *testing.T, taken map[int]bool) int {
	t.Helper()
	// Below the kernel's ephemeral range (32768-60999 by default): a port
	// from there, free now, is often handed to some other test's ":0"
	// socket or outgoing connection before the node binds it (CI: bind:
	// address already in use). Ports down here only ever come from a
	// picker like this one.
	const lo, hi = 20000, 32000
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		pc.Close()
		taken[p] = true
		return p
	}
	t.Fatal("no free port")
	return 0
}

// TestClusterBinaryStatus starts three real `meshmeet serve` processes that
// form a cluster, and reads it back with `meshmeet cluster status`.
func TestClusterBinaryStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary: skipped under -short")
	}
	bin, secretFile := buildBinary(t)
	dir := filepath.Dir(bin)
	secret, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^meshmeet-cs1:[A-Za-z0-9_-]{43}\n$`).Match(secret) {
		t.Fatalf("cluster init printed %q", secret)
	}

	type proc struct {
		name, http, gossip string
		cmd                *exec.Cmd
		log                *bytes.Buffer
	}
	taken := map[int]bool{}
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = &proc{
			name:   fmt.Sprintf("node%d", i),
			http:   fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			gossip: fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			log:    &bytes.Buffer{},
		}
	}
	for i, p := range procs {
		var join []string
		for j, q := range procs {
			if j != i {
				join = append(join, q.gossip)
			}
		}
		p.cmd = exec.Command(bin, "serve",
			"--node-name", p.name, "--region", fmt.Sprintf("region-%d", i),
			"--http-addr", p.http,
			"--rtc-port", fmt.Sprint(clusterFreePort(t, taken)),
			"--gossip-addr", p.gossip,
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			"--relay-addr", fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			"--raft-voter", "--bootstrap-expect", "3",
			"--join", strings.Join(join, ","),
			"--gossip-profile", "lan",
			"--cluster-secret-file", secretFile,
			"--lat", "48.85", "--lon", "2.35",
			"--no-turn",
		)
		p.cmd.Env = append(os.Environ(), "MESHMEET_CLUSTER_SECRET=")
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.cmd.Process.Signal(syscall.SIGINT)
		}
		for _, p := range procs {
			done := make(chan error, 1)
			go func() { done <- p.cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s exited: %v", p.name, err)
				}
			case <-time.After(30 * time.Second):
				p.cmd.Process.Kill()
				t.Errorf("%s did not stop on SIGINT", p.name)
			}
			if t.Failed() {
				t.Logf("%s log:\n%s", p.name, p.log)
			}
			if bytes.Contains(p.log.Bytes(), bytes.TrimSpace(secret)[13:]) {
				t.Errorf("%s logged the cluster secret", p.name)
			}
		}
	})

	status := func(url string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "cluster", "status", "--url", url, "--cluster-secret-file", secretFile).CombinedOutput()
		return string(out), err
	}
	var out string
	deadline := time.Now().Add(90 * time.Second)
	for {
		var err error
		out, err = status("http://" + procs[2].http)
		if err == nil && strings.Count(out, " alive ") == 3 && strings.Contains(out, "(3)\n") && !strings.Contains(out, "none (no quorum)") && strings.Contains(out, "live rooms: 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster did not form; last status (%v):\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("cluster status:\n%s", out)
	for i, p := range procs {
		if !strings.Contains(out, p.name) || !strings.Contains(out, fmt.Sprintf("region-%d (48.85,2.35)", i)) {
			t.Fatalf("status misses %s or its region:\n%s", p.name, out)
		}
	}
	if !regexp.MustCompile(`raft leader: node[0-2]\n`).MatchString(out) {
		t.Fatalf("no leader in status:\n%s", out)
	}

	// Another secret is refused, and says so without echoing anything.
	other := filepath.Join(dir, "other.secret")
	o, _ := exec.Command(bin, "cluster", "init").Output()
	os.WriteFile(other, o, 0o600)
	bad, err := exec.Command(bin, "cluster", "status", "--url", "http://"+procs[0].http, "--cluster-secret-file", other).CombinedOutput()
	if err == nil || !strings.Contains(string(bad), "refused") {
		t.Fatalf("status with another secret: %v\n%s", err, bad)
	}
}
