package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/internal/syncbuf"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestPrivacyCanarySweep is issue 13's canary sweep (7a) over real `meshmeet
// serve` processes: a meeting across two nodes whose room name, display
// names, password and chat text are unique canaries — join, media, chat,
// set password, lobby (one person admitted, one denied), mute, stop camera,
// remove, leave — at --log-level debug (pion, quic-go, raft and memberlist
// log through the same handler). None of the canaries may appear in either
// node's output, in either node's /metrics, or in any file created under
// the nodes' working, home and temporary directories.
func TestPrivacyCanarySweep(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary: skipped under -short")
	}
	bin, secretFile := buildBinary(t)
	dir := filepath.Dir(bin)

	const (
		room     = "ZqCanaryRoom Obsidian Walrus"
		alice    = "ZqCanaryAlice"
		bob      = "ZqCanaryBob"
		waiter   = "ZqCanaryWaiter"
		denied   = "ZqCanaryDenied"
		chat     = "ZqCanaryChat pickled lighthouse"
		password = "ZqCanaryPassword-41"
	)
	canaries := []string{room, "ZqCanary", "Obsidian Walrus", alice, bob, waiter, denied, chat, "pickled lighthouse", password}

	type proc struct {
		http, metrics, gossip string
		home                  string
		cmd                   *exec.Cmd
		log                   *syncbuf.Buffer
	}
	taken := map[int]bool{}
	procs := make([]*proc, 2)
	for i := range procs {
		home := filepath.Join(dir, fmt.Sprintf("node%d", i))
		for _, d := range []string{"home", "tmp", "work"} {
			if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		procs[i] = &proc{
			http:    fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			metrics: fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			gossip:  fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			home:    home,
			log:     &syncbuf.Buffer{},
		}
	}
	for i, p := range procs {
		p.cmd = exec.Command(bin, "serve",
			"--node-name", fmt.Sprintf("node%d", i), "--region", fmt.Sprintf("region-%d", i),
			"--http-addr", p.http,
			"--metrics-addr", p.metrics,
			"--rtc-port", fmt.Sprint(clusterFreePort(t, taken)),
			"--gossip-addr", p.gossip,
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			"--relay-addr", fmt.Sprintf("127.0.0.1:%d", clusterFreePort(t, taken)),
			"--raft-voter", "--bootstrap-expect", "2",
			"--join", procs[1-i].gossip,
			"--gossip-profile", "lan",
			"--cluster-secret-file", secretFile,
			"--no-turn",
			"--log-level", "debug",
		)
		p.cmd.Dir = filepath.Join(p.home, "work")
		p.cmd.Env = append(os.Environ(), "MESHMEET_CLUSTER_SECRET=",
			"HOME="+filepath.Join(p.home, "home"), "TMPDIR="+filepath.Join(p.home, "tmp"))
		p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for _, p := range procs {
			p.cmd.Process.Signal(syscall.SIGINT)
		}
		for _, p := range procs {
			done := make(chan error, 1)
			go func() { done <- p.cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				p.cmd.Process.Kill()
				<-done
			}
		}
	}
	t.Cleanup(stop)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	joinAt := func(i int, name string, opts client.Options) *client.Client {
		t.Helper()
		opts.Name = name
		return joinUntil(ctx, t, "http://"+procs[i].http, fmt.Sprintf("node%d", i), room, opts)
	}
	audio, err := client.NewAudio("a", "s1")
	if err != nil {
		t.Fatal(err)
	}
	a := joinAt(0, alice, client.Options{Tracks: []webrtc.TrackLocal{audio}})
	go (&client.Synth{Sender: 1, Ext: a.Ext}).RunTalk(ctx, audio, client.AudioOptions{TalkBytes: 80, SilenceBytes: 80, Talk: 1})
	got := &audioLog{got: map[uint32][2]int{}}
	b := joinAt(1, bob, client.Options{OnTrack: got.onTrack})
	aw, bw := newWatcher(a), newWatcher(b)
	waitFor(t, "Bob receives Alice's audio across the nodes", func() bool { return got.count(1)[0] >= 20 })
	send := func(c *client.Client, m *wire.Message) {
		t.Helper()
		if err := c.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	send(a, &wire.Message{Type: wire.TypeChat, Text: chat})
	bw.wait(t, "Bob gets the chat", func(m *wire.Message) bool { return m.Type == wire.TypeChat && m.Text == chat })
	send(a, &wire.Message{Type: wire.TypeSetPassword, Password: password})
	aw.wait(t, "password set", func(m *wire.Message) bool { return m.Type == wire.TypeSecurity })
	on := true
	send(a, &wire.Message{Type: wire.TypeSetLobby, Lobby: &on})
	bw.wait(t, "lobby on seen across the nodes", func(m *wire.Message) bool {
		return m.Type == wire.TypeModeration && m.Action == wire.ActionLobbyOn
	})
	for _, name := range []string{waiter, denied} {
		s, first := rawJoinPassword(ctx, t, procs[1].http, room, name, password)
		if first.Type != wire.TypeWaiting {
			t.Fatalf("%s: %s", name, first.Type)
		}
		var id string
		aw.wait(t, name+" in the lobby", func(m *wire.Message) bool {
			for _, p := range m.Participants {
				if m.Type == wire.TypeLobby && p.Name == name {
					id = p.ID
					return true
				}
			}
			return false
		})
		if name == waiter {
			send(a, &wire.Message{Type: wire.TypeAdmit, Participant: id})
			if m := s.read(t, ctx); m.Type != wire.TypeWelcome {
				t.Fatalf("admitted: %s", m.Type)
			}
			s.write(t, ctx, &wire.Message{Type: wire.TypeLeave})
		} else {
			send(a, &wire.Message{Type: wire.TypeDeny, Participant: id})
			s.read(t, ctx)
		}
	}
	send(a, &wire.Message{Type: wire.TypeMuteParticipant, Participant: b.Welcome.Participant})
	send(a, &wire.Message{Type: wire.TypeStopCamera, Participant: b.Welcome.Participant})
	send(a, &wire.Message{Type: wire.TypeRemoveParticipant, Participant: b.Welcome.Participant})
	bw.wait(t, "Bob removed", func(m *wire.Message) bool { return m.Type == wire.TypeError && m.Error.Code == wire.CodeRemoved })
	a.Leave(ctx)

	var metrics []string
	for _, p := range procs {
		resp, err := http.Get("http://" + p.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = append(metrics, string(body))
	}
	stop()

	all := procs[0].log.String() + procs[1].log.String()
	for _, want := range []string{"participant joined", "moderation", "participant waits in the lobby", "pion", "raft says"} {
		if !strings.Contains(all, want) {
			t.Fatalf("the debug logs lack %q; the sweep would prove nothing:\n%s", want, all)
		}
	}
	for i, p := range procs {
		out := p.log.String()
		if !strings.Contains(out, "participant joined") {
			t.Fatalf("node%d's debug log lacks the meeting; the sweep would prove nothing:\n%s", i, out)
		}
		if len(metrics[i]) < 100 {
			t.Fatalf("node%d's /metrics is nearly empty: %q", i, metrics[i])
		}
		files := 0
		filepath.WalkDir(p.home, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			files++
			data, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("read %s: %v", path, err)
				return nil
			}
			for _, c := range canaries {
				if bytes.Contains(data, []byte(c)) {
					t.Errorf("node%d: file %s contains %q", i, path, c)
				}
			}
			return nil
		})
		t.Logf("node%d: %d bytes of debug log, %d bytes of metrics, %d files created", i, len(out), len(metrics[i]), files)
		for _, c := range canaries {
			if strings.Contains(out, c) {
				t.Errorf("node%d's log contains %q", i, c)
			}
			if strings.Contains(metrics[i], c) {
				t.Errorf("node%d's /metrics contains %q", i, c)
			}
		}
	}
}

// rawJoinPassword joins with a password on a bare WebSocket.
func rawJoinPassword(ctx context.Context, t *testing.T, addr, room, name, password string) (*rawSession, *wire.Message) {
	t.Helper()
	s, first := rawJoinMsg(ctx, t, addr, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room, Name: name, Password: password})
	return s, first
}
