package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"github.com/meshmeet/meshmeet/mesh"
)

// TestReadyzFollowsDirectory: /readyz of a serving node answers 200 only
// while its room directory has a leader; once the directory is gone it
// answers 503, and /healthz (liveness) still answers 200.
func TestReadyzFollowsDirectory(t *testing.T) {
	t.Setenv(envClusterSecret, "")
	cfg := &Config{HTTPAddr: "127.0.0.1:7880", RTCPort: 7882, NodeName: "solo", Region: "local"}
	cfg.Mesh.GossipAddr, cfg.Mesh.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Mesh.RaftTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	cp, err := startMesh(gctx, g, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	// The signaling server's own /readyz and /healthz always answer 200
	// while it runs; this stands in for it.
	inner := http.NewServeMux()
	inner.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready\n")) })
	inner.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	srv := httptest.NewServer(withReadiness(cp.Ready, inner))
	defer srv.Close()
	status := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, "/readyz 200 once the directory has a leader", func() bool { return status("/readyz") == 200 })

	cancel() // the node leaves: no leader any more
	g.Wait()
	if got := status("/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz without a directory leader: %d, want 503", got)
	}
	if got := status("/healthz"); got != 200 {
		t.Fatalf("/healthz: %d, want 200", got)
	}
}

// TestLooseSecretFileWarns: serve warns, naming the file but never its
// content, when the cluster secret file is readable by group or others,
// and says nothing about a 0600 file.
func TestLooseSecretFileWarns(t *testing.T) {
	t.Setenv(envClusterSecret, "")
	dir := t.TempDir()
	secret := mesh.NewSecret().Encode()
	for _, tt := range []struct {
		mode os.FileMode
		warn bool
	}{{0o644, true}, {0o640, true}, {0o600, false}, {0o400, false}} {
		path := filepath.Join(dir, "cluster.secret."+tt.mode.String())
		if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, tt.mode) // WriteFile's mode is subject to the umask
		var buf syncbuf.Buffer
		cfg := &Config{HTTPAddr: "127.0.0.1:7880", RTCPort: 7882, NodeName: "n", Region: "local"}
		cfg.Mesh.GossipAddr, cfg.Mesh.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
		cfg.Mesh.ClusterSecretFile = path
		cfg.Mesh.RaftTimeout = 200 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		g, gctx := errgroup.WithContext(ctx)
		_, err := startMesh(gctx, g, cfg, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
		cancel()
		g.Wait()
		if err != nil {
			t.Fatalf("mode %v: %v", tt.mode, err)
		}
		out := buf.String()
		warned := strings.Contains(out, "level=WARN") && strings.Contains(out, "readable by group or others") && strings.Contains(out, path)
		if warned != tt.warn {
			t.Fatalf("mode %v: warned %v, want %v:\n%s", tt.mode, warned, tt.warn, out)
		}
		if strings.Contains(out, secret[len(secret)-20:]) {
			t.Fatal("the log carries the secret")
		}
	}
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
