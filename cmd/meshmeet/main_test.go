package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// binDir holds binaries built by tests; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "meshmeet-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	app.ErrWriter = &out
	app.ExitErrHandler = func(*cli.Context, error) {} // keep the test process alive
	err := app.RunContext(context.Background(), append([]string{"meshmeet"}, args...))
	return out.String(), err
}

func TestRoomNew(t *testing.T) {
	out, err := run(t, "room", "new")
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSpace(out)
	if !regexp.MustCompile(`^([A-Z][a-z]+){5}$`).MatchString(name) {
		t.Fatalf("room new printed %q", out)
	}
	if roomname.Check(name) != roomname.OK {
		t.Fatalf("room new printed a guessable name %q", name)
	}
}

func TestRoomCheck(t *testing.T) {
	if _, err := run(t, "room", "check", "standup"); err == nil || !strings.Contains(err.Error(), "easy to guess") {
		t.Fatalf("room check standup: %v", err)
	}
	out, err := run(t, "room", "check", "BraveOttersChaseSilverComets")
	if err != nil || !strings.Contains(out, "not easy to guess") {
		t.Fatalf("room check of a good name: %q, %v", out, err)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "meshmeet ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}

func TestEnvVar(t *testing.T) {
	for flag, want := range map[string]string{
		"http-addr":           "MESHMEET_HTTP_ADDR",
		"rtc-port":            "MESHMEET_RTC_PORT",
		"cluster-secret-file": "MESHMEET_CLUSTER_SECRET_FILE",
	} {
		if got := envVar(flag); len(got) != 1 || got[0] != want {
			t.Errorf("envVar(%q) = %v, want %s", flag, got, want)
		}
	}
}

func TestServeFlagsReadEnvironment(t *testing.T) {
	t.Setenv("MESHMEET_LOG_FORMAT", "yaml")
	_, err := run(t, "serve")
	if err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("serve with MESHMEET_LOG_FORMAT=yaml: %v, want a --log-format error", err)
	}
}

// devKeys returns random keys for a node that runs alone.
func devKeys() clusterKeys {
	k := clusterKeys{RoomKey: make([]byte, 32), TURNSecret: make([]byte, 32), AdminToken: make([]byte, 32)}
	rand.Read(k.RoomKey)
	rand.Read(k.TURNSecret)
	rand.Read(k.AdminToken)
	return k
}
