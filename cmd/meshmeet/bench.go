package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/meshmeet/meshmeet/bench"
)

// benchFlags are the values of `meshmeet bench`'s flags.
type benchFlags struct {
	preset, file, url      string
	metricsURL             string
	local                  int
	rooms, pubs, apubs     int
	subs, layout           int
	joinRate, churn        float64
	duration, settle       time.Duration
	keyframe, maxP95       time.Duration
	linkDelay, regions     string
	maxLoss                float64
	jsonOut, htmlOut       string
	quiet                  bool
	binary, logLevel       string
	nodeArgs               cli.StringSlice
	seed                   uint64
	crossNode, noCrossNode bool
	turnOnly               bool
}

// benchCommand is `meshmeet bench`: it maps flags onto bench.Params and
// writes the report (docs/bench.md).
func benchCommand() *cli.Command { return benchCommandFor(&benchFlags{}) }

// benchCommandFor binds the flags to f.
func benchCommandFor(f *benchFlags) *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load-generate against a cluster (or a local one it starts) and report what participants feel",
		Description: "Presets: " + strings.Join(bench.PresetNames(), ", ") + ". Flags override the preset or the " +
			"scenario file field by field. Exits non-zero when a --max-loss or --max-p95-delay guard fails.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "preset", Value: "meeting", Destination: &f.preset, Usage: "scenario preset: " + strings.Join(bench.PresetNames(), ", ")},
			&cli.StringFlag{Name: "scenario", Destination: &f.file, Usage: "scenario file (YAML or JSON) applied over the preset"},
			&cli.StringFlag{Name: "url", Destination: &f.url, Usage: "comma-separated node URLs of a running cluster (http://host:port); rooms are dealt to them in turn"},
			&cli.StringFlag{Name: "metrics-url", Destination: &f.metricsURL, Usage: "comma-separated Prometheus endpoints of the --url nodes, same order (serve --metrics-addr): their CPU, memory and bridge counters join the report"},
			&cli.IntFlag{Name: "local", Destination: &f.local, Usage: "start this many local nodes (this binary) on 127.0.0.1 and stop them after"},
			&cli.StringFlag{Name: "meshmeet-binary", Destination: &f.binary, Usage: "binary to run for --local [this one]"},
			&cli.StringSliceFlag{Name: "node-arg", Destination: &f.nodeArgs, Usage: "extra `serve` argument for local nodes (repeatable)"},
			&cli.IntFlag{Name: "rooms", Destination: &f.rooms, Usage: "rooms"},
			&cli.IntFlag{Name: "publishers", Destination: &f.pubs, Usage: "audio+video publishers per room"},
			&cli.IntFlag{Name: "audio-publishers", Destination: &f.apubs, Usage: "audio-only publishers per room"},
			&cli.IntFlag{Name: "subscribers", Destination: &f.subs, Usage: "receive-only participants per room"},
			&cli.IntFlag{Name: "layout", Destination: &f.layout, Usage: "video tiles each participant shows (0: all)"},
			&cli.Float64Flag{Name: "join-rate", Destination: &f.joinRate, Usage: "joins per second"},
			&cli.DurationFlag{Name: "duration", Destination: &f.duration, Usage: "steady window measured after ramp-up"},
			&cli.DurationFlag{Name: "settle", Destination: &f.settle, Usage: "wait after the last join before measuring"},
			&cli.Float64Flag{Name: "churn", Destination: &f.churn, Usage: "participants replaced per minute during the window"},
			&cli.DurationFlag{Name: "keyframe-interval", Destination: &f.keyframe, Usage: "periodic keyframes (0: on request only)"},
			&cli.StringFlag{Name: "regions", Destination: &f.regions, Usage: "comma-separated regions; local nodes are dealt to them in turn"},
			&cli.StringFlag{Name: "link-delay", Destination: &f.linkDelay, Usage: "one-way delay between regions, e.g. eu-us=40ms,us-ap=60ms"},
			&cli.BoolFlag{Name: "cross-node", Destination: &f.crossNode, Usage: "spread each room over the regions' nodes (needs the cascade)"},
			&cli.BoolFlag{Name: "no-cross-node", Destination: &f.noCrossNode, Usage: "keep each room on one node"},
			&cli.BoolFlag{Name: "turn-only", Destination: &f.turnOnly, Usage: "participants use TURN-relayed ICE candidates only: all media through the nodes' TURN"},
			&cli.Float64Flag{Name: "max-loss", Destination: &f.maxLoss, Usage: "fail (exit 1) when audio or video loss exceeds this percentage"},
			&cli.DurationFlag{Name: "max-p95-delay", Destination: &f.maxP95, Usage: "fail (exit 1) when the p95 one-way delay exceeds this"},
			&cli.StringFlag{Name: "json", Destination: &f.jsonOut, Usage: "write every figure to this JSON file"},
			&cli.StringFlag{Name: "html", Destination: &f.htmlOut, Usage: "write a self-contained HTML report with plots"},
			&cli.BoolFlag{Name: "quiet", Destination: &f.quiet, Usage: "no progress line"},
			&cli.Uint64Flag{Name: "seed", Destination: &f.seed, Usage: "seed of talk patterns and frame sizes (0: random)"},
			&cli.StringFlag{Name: "log-level", Value: "warn", Destination: &f.logLevel, Usage: "debug, info, warn or error"},
		},
		Action: func(c *cli.Context) error {
			p, err := f.params(c)
			if err != nil {
				return err
			}
			rep, err := bench.Run(c.Context, p)
			if rep == nil {
				return err
			}
			if werr := rep.WriteTable(c.App.Writer); werr != nil {
				return werr
			}
			if f.jsonOut != "" {
				if werr := rep.WriteJSONFile(f.jsonOut); werr != nil {
					return werr
				}
			}
			if f.htmlOut != "" {
				if werr := rep.WriteHTMLFile(f.htmlOut); werr != nil {
					return werr
				}
			}
			if errors.Is(err, bench.ErrGuardsFailed) {
				return cli.Exit("bench: guards failed: "+strings.Join(rep.Guards.Failed, "; "), 1)
			}
			return err
		},
	}
}

// params maps the flags onto bench.Params: preset, then the scenario file,
// then each flag that was set.
func (f *benchFlags) params(c *cli.Context) (bench.Params, error) {
	scn, err := bench.Preset(f.preset)
	if err != nil {
		return bench.Params{}, err
	}
	if f.file != "" {
		if scn, err = bench.LoadScenario(f.file, scn); err != nil {
			return bench.Params{}, err
		}
	}
	set := c.IsSet
	if set("rooms") {
		scn.Rooms = f.rooms
	}
	if set("publishers") {
		scn.Publishers = f.pubs
	}
	if set("audio-publishers") {
		scn.AudioPublishers = f.apubs
	}
	if set("subscribers") {
		scn.Subscribers = f.subs
	}
	if set("layout") {
		scn.Layout = f.layout
	}
	if set("join-rate") {
		scn.JoinRate = f.joinRate
	}
	if set("duration") {
		scn.Duration = f.duration
	}
	if set("settle") {
		scn.Settle = f.settle
	}
	if set("churn") {
		scn.Churn = f.churn
	}
	if set("keyframe-interval") {
		scn.KeyframeInterval = f.keyframe
	}
	if set("regions") {
		scn.Regions = strings.Split(f.regions, ",")
	}
	if set("link-delay") {
		if scn.LinkDelay, err = bench.ParseLinks(f.linkDelay); err != nil {
			return bench.Params{}, fmt.Errorf("--link-delay: %w", err)
		}
	}
	if f.crossNode {
		scn.CrossNode = true
	}
	if f.noCrossNode {
		scn.CrossNode = false
	}
	if f.turnOnly {
		scn.TURNOnly = true
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return bench.Params{}, fmt.Errorf("--log-level: %w", err)
	}
	p := bench.Params{
		Scenario:    scn,
		Local:       f.local,
		Binary:      f.binary,
		NodeArgs:    f.nodeArgs.Value(),
		MaxLoss:     f.maxLoss,
		MaxP95Delay: f.maxP95,
		Seed:        f.seed,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	}
	if f.url != "" {
		p.URLs = strings.Split(f.url, ",")
	}
	if f.metricsURL != "" {
		p.MetricsURLs = strings.Split(f.metricsURL, ",")
	}
	if !f.quiet {
		p.Progress = c.App.ErrWriter
		if p.Progress == nil {
			p.Progress = os.Stderr
		}
	}
	if p.Local == 0 && len(p.URLs) == 0 {
		return bench.Params{}, errors.New("bench: give --url of a running node or --local N")
	}
	return p, nil
}
