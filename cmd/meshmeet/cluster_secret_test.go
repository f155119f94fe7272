package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/meshmeet/meshmeet/mesh"
)

func TestClusterSecretSources(t *testing.T) {
	dir := t.TempDir()
	s := mesh.NewSecret()
	good := filepath.Join(dir, "good")
	os.WriteFile(good, []byte(s.Encode()+"\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("meshmeet-cs1:not-a-secret-but-private"), 0o600)

	t.Setenv(envClusterSecret, "")
	if _, ok, err := readClusterSecret(""); ok || err != nil {
		t.Fatalf("no source: %v %v", ok, err)
	}
	if got, ok, err := readClusterSecret(good); !ok || err != nil || got != s {
		t.Fatalf("file: %v %v", ok, err)
	}
	_, _, err := readClusterSecret(bad)
	if err == nil || strings.Contains(err.Error(), "not-a-secret-but-private") {
		t.Fatalf("bad file: %v", err)
	}
	t.Setenv(envClusterSecret, s.Encode())
	if got, ok, err := readClusterSecret(""); !ok || err != nil || got != s {
		t.Fatalf("env: %v %v", ok, err)
	}
	t.Setenv(envClusterSecret, "garbage-secret-value")
	if _, _, err := readClusterSecret(""); err == nil || strings.Contains(err.Error(), "garbage-secret-value") {
		t.Fatalf("bad env: %v", err)
	}
}

func TestClusterJoinNeedsSecret(t *testing.T) {
	t.Setenv(envClusterSecret, "")
	cfg := &Config{HTTPAddr: "127.0.0.1:7880", RTCPort: 7882, NodeName: "a", Region: "local"}
	cfg.Mesh.GossipAddr, cfg.Mesh.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Mesh.Join = *cliSlice("127.0.0.1:1")
	g, ctx := errgroup.WithContext(context.Background())
	if _, err := startMesh(ctx, g, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "cluster secret") {
		t.Fatalf("join without a secret: %v", err)
	}
}

// TestClusterDefaultServeMesh: with no cluster flags, startMesh gives a
// one-voter raft directory and an admin handler guarded by the admin token.
func TestClusterDefaultServeMesh(t *testing.T) {
	t.Setenv(envClusterSecret, "")
	cfg := &Config{HTTPAddr: "127.0.0.1:7880", RTCPort: 7882, NodeName: "solo", Region: "local"}
	// The flag defaults: dev mode must not take the fixed ports.
	cfg.Mesh.GossipAddr, cfg.Mesh.RaftAddr = defaultGossipAddr, defaultRaftAddr
	for _, a := range []string{defaultGossipAddr, defaultRaftAddr} {
		if ln, err := net.Listen("tcp", a); err == nil {
			defer ln.Close() // hold them: a second dev node must still start
		}
	}
	cfg.Mesh.RaftTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	cp, err := startMesh(gctx, g, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	}()
	if _, ok := cp.Directory.(*mesh.Node); !ok {
		t.Fatalf("directory is %T, want the raft-backed *mesh.Node", cp.Directory)
	}
	key := mesh.NewRoomKey(cp.Keys.RoomKey, "solo room")
	jctx, jcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer jcancel()
	r, created, err := cp.Directory.Join(jctx, key, "solo")
	if err != nil || !created || r.Participants() != 1 {
		t.Fatalf("join: %+v %v %v", r, created, err)
	}
	srv := httptest.NewServer(http.StripPrefix("", cp.Admin))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/admin/status", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin without token: %v %v", resp.StatusCode, err)
	}
	st, _, err := fetchStatus(context.Background(), srv.URL, cp.Keys.AdminToken)
	if err != nil || st.Rooms != 1 || st.Leader != "solo" {
		t.Fatalf("status: %+v %v", st, err)
	}
}

func cliSlice(v ...string) *cli.StringSlice { return cli.NewStringSlice(v...) }
