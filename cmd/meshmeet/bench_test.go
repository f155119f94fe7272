package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/bench"
)

// benchParams runs `meshmeet bench ARGS` up to the point where the flags
// are mapped, and returns the Params it would run.
func benchParams(t *testing.T, args ...string) (bench.Params, error) {
	t.Helper()
	var got bench.Params
	var perr error
	f := &benchFlags{}
	cmd := benchCommandFor(f)
	cmd.Action = func(c *cli.Context) error {
		got, perr = f.params(c)
		return nil
	}
	app := &cli.App{Name: "meshmeet", Commands: []*cli.Command{cmd}, Writer: os.Stderr, ErrWriter: os.Stderr}
	if err := app.Run(append([]string{"meshmeet", "bench"}, args...)); err != nil {
		return got, err
	}
	return got, perr
}

func TestBenchFlags(t *testing.T) {
	p, err := benchParams(t, "--local", "3", "--preset", "livestream", "--subscribers", "40",
		"--duration", "45s", "--max-loss", "0.5", "--max-p95-delay", "150ms", "--link-delay", "a-b=40ms",
		"--regions", "a,b", "--turn-only", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	s := p.Scenario
	if p.Local != 3 || s.Name != "livestream" || s.Subscribers != 40 || s.Publishers != 1 || s.Layout != 1 ||
		s.Duration != 45*time.Second || s.KeyframeInterval != 2*time.Second || !s.TURNOnly {
		t.Errorf("scenario %+v, local %d", s, p.Local)
	}
	if p.MaxLoss != 0.5 || p.MaxP95Delay != 150*time.Millisecond || p.Progress != nil {
		t.Errorf("params %+v", p)
	}
	if s.LinkDelay["a-b"] != 40*time.Millisecond || strings.Join(s.Regions, ",") != "a,b" {
		t.Errorf("regions %v links %v", s.Regions, s.LinkDelay)
	}

	// A scenario file over the preset, flags over the file.
	file := filepath.Join(t.TempDir(), "s.yaml")
	os.WriteFile(file, []byte("rooms: 7\nsubscribers: 2\n"), 0o600)
	p, err = benchParams(t, "--url", "http://127.0.0.1:1,http://127.0.0.1:2", "--scenario", file, "--subscribers", "5")
	if err != nil {
		t.Fatal(err)
	}
	if p.Scenario.Rooms != 7 || p.Scenario.Subscribers != 5 || p.Scenario.Publishers != 4 || len(p.URLs) != 2 || p.Progress == nil {
		t.Errorf("params %+v", p)
	}

	for _, bad := range [][]string{
		{"--preset", "meeting"},                             // no target
		{"--local", "1", "--preset", "nope"},                // unknown preset
		{"--local", "1", "--link-delay", "eu-us"},           // no delay
		{"--local", "1", "--scenario", "/nonexistent.yaml"}, // missing file
	} {
		if _, err := benchParams(t, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestBenchCommand runs `meshmeet bench --local 1` as a user would: it
// writes the table, JSON and HTML, and exits 1 when a guard fails (here a
// p95 delay no real path meets) and only for that guard.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end bench run skipped in -short mode")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "meshmeet")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	jsonPath, htmlPath := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.html")
	cmd := exec.Command(bin, "bench", "--local", "1", "--preset", "audio-fanout", "--rooms", "1", "--subscribers", "2",
		"--duration", "2s", "--settle", "500ms", "--json", jsonPath, "--html", htmlPath,
		"--max-loss", "50", "--max-p95-delay", "1ns")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "audio delay (ms)") || !strings.Contains(stdout.String(), "GUARD FAILED: audio p95 delay") {
		t.Errorf("table:\n%s", stdout.String())
	}
	if strings.Contains(stdout.String(), "GUARD FAILED: audio loss") {
		t.Errorf("the loss guard failed:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "joined") {
		t.Errorf("no progress on stderr:\n%s", stderr.String())
	}
	var rep struct {
		Participants struct{ Joined int } `json:"participants"`
		Guards       struct{ Failed []string }
		AudioDelay   struct{ Count int } `json:"audio_delay_ms"`
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Participants.Joined != 4 || rep.AudioDelay.Count == 0 || len(rep.Guards.Failed) == 0 {
		t.Errorf("json report: %+v", rep)
	}
	for _, f := range rep.Guards.Failed {
		if !strings.Contains(f, "delay") {
			t.Errorf("unexpected guard failure %q", f)
		}
	}
	h, err := os.ReadFile(htmlPath)
	if err != nil || !strings.Contains(string(h), "<svg") {
		t.Errorf("html report: %v", err)
	}
}
