package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is what a run does: rooms and who is in them, how they join,
// how long the measured window lasts, where participants enter. Counts are
// per room. A scenario file (YAML or JSON) has the same fields, named as
// in the yaml tags; flags override single fields.
type Scenario struct {
	// Name names the scenario in the report (a preset's name by default).
	Name string `yaml:"name" json:"name"`
	// Rooms is the number of rooms [1].
	Rooms int `yaml:"rooms" json:"rooms"`
	// Publishers send audio and three-layer simulcast video.
	Publishers int `yaml:"publishers" json:"publishers"`
	// AudioPublishers send audio only (talkers).
	AudioPublishers int `yaml:"audio_publishers" json:"audio_publishers"`
	// Subscribers send nothing and receive what the layout shows.
	Subscribers int `yaml:"subscribers" json:"subscribers"`
	// Layout is how many video tiles each participant shows; 0: every
	// video. The tile height follows from it, as in a browser's grid: one
	// tile 720 px, up to four 360 px, more 180 px.
	Layout int `yaml:"layout" json:"layout"`
	// JoinRate is joins per second over the whole run [10].
	JoinRate float64 `yaml:"join_rate" json:"join_rate"`
	// Duration is the measured steady window, after every participant has
	// joined and Settle has passed [30s].
	Duration time.Duration `yaml:"duration" json:"duration"`
	// Settle is the wait between the last join and the steady window [2s].
	Settle time.Duration `yaml:"settle" json:"settle"`
	// Churn is participants leaving (and a fresh one joining in their
	// place) per minute during the steady window.
	Churn float64 `yaml:"churn" json:"churn"`
	// Talk is the share of time an audio publisher talks (0..1) [0.5].
	Talk float64 `yaml:"talk" json:"talk"`
	// KeyframeInterval sends periodic keyframes; 0: only on request (PLI),
	// as a browser does.
	KeyframeInterval time.Duration `yaml:"keyframe_interval" json:"keyframe_interval"`
	// VideoKbps are the three simulcast layers' bit rates, lowest first
	// [150, 500, 1700].
	VideoKbps []int `yaml:"video_kbps" json:"video_kbps"`
	// Regions name the regions; local nodes are dealt to them in turn and
	// rooms to nodes in turn. Empty: one region "local".
	Regions []string `yaml:"regions" json:"regions"`
	// Spread places each room's participants in the regions in turn;
	// otherwise they are in the region of the node that hosts their room.
	// A participant entering a node of another region reaches it over
	// the emulated link between the two.
	Spread bool `yaml:"spread" json:"spread"`
	// CrossNode spreads each room's participants over the regions' nodes
	// (each participant enters a node of its own region); the cascade
	// between bridges joins them into one meeting. Without it each room
	// lives on one node.
	CrossNode bool `yaml:"cross_node" json:"cross_node"`
	// LinkDelay is the one-way delay between two regions ("eu-us": 40ms),
	// emulated on the paths between participants and nodes of different
	// regions.
	LinkDelay map[string]time.Duration `yaml:"link_delay" json:"link_delay"`
	// LinkLoss is the loss rate (0..1) between two regions.
	LinkLoss map[string]float64 `yaml:"link_loss" json:"link_loss"`
	// TURNOnly makes every participant use TURN-relayed ICE candidates
	// only, as a browser does with iceTransportPolicy "relay": all media crosses
	// the node's TURN server (the TURN URLs the node hands out) on the way
	// to its bridge. It measures what participants behind a firewall that
	// blocks the bridge feel, and what TURN costs the node.
	TURNOnly bool `yaml:"turn_only" json:"turn_only"`
}

// Presets are the named scenarios, sized to run on a small machine with
// generator and nodes side by side; scale them with flags.
var Presets = map[string]Scenario{
	// A few talkers, many listeners: the bridge's audio fan-out.
	"audio-fanout": {Name: "audio-fanout", Rooms: 2, AudioPublishers: 2, Subscribers: 10, Talk: 0.5},
	// The write path's audio fan-out (issue 15): 5 talkers heard by 95
	// listeners, ~25k forwarded packets/s of ~100 B; 100 participants (a
	// meeting's default cap) joining at 4 a second (sized when they all
	// came from one address, which a node allows 100 and 5 joins/s; each
	// now has its own). Run it on one local node: the node then has a CPU of
	// its own and the report gives its CPU per forwarded packet as a ratio
	// to the raw floor measured on that CPU.
	"audio-fanout-100": {Name: "audio-fanout-100", Rooms: 1, AudioPublishers: 5, Subscribers: 95, Talk: 1, JoinRate: 4, Settle: 5 * time.Second},
	// The write path's livestream: one simulcast presenter, 50 viewers
	// on its top layer, ~14k forwarded packets/s of ~900 B.
	"livestream-50": {Name: "livestream-50", Rooms: 1, Publishers: 1, Subscribers: 50, Layout: 1, KeyframeInterval: 2 * time.Second, JoinRate: 4, Settle: 5 * time.Second},
	// Everyone publishes audio and video and shows a 2x2 grid.
	"meeting": {Name: "meeting", Rooms: 2, Publishers: 4, Layout: 4},
	// One presenter, many viewers in full screen; periodic keyframes as a
	// streaming encoder sends them.
	"livestream": {Name: "livestream", Rooms: 1, Publishers: 1, Subscribers: 10, Layout: 1, KeyframeInterval: 2 * time.Second},
	// Everybody arrives at once: join time and time to first frame.
	"join-storm": {Name: "join-storm", Rooms: 4, Publishers: 1, Subscribers: 6, Layout: 1, JoinRate: 50, Duration: 10 * time.Second},
	// Three regions, rooms spanning them over the cascade.
	"global": {Name: "global", Rooms: 3, Publishers: 3, Subscribers: 3, Layout: 4,
		Regions: []string{"eu", "us", "ap"}, Spread: true, CrossNode: true,
		LinkDelay: map[string]time.Duration{"eu-us": 40 * time.Millisecond, "us-ap": 60 * time.Millisecond, "eu-ap": 110 * time.Millisecond}},
	// A large meeting: one room, many participants, few talkers, spread
	// over the nodes (run with --local 5); last-N keeps each subscriber's
	// video to the recent speakers. Sized for a small machine; the
	// 1,000-participant/5-bridge run scales it with flags (docs/bench.md).
	"large": {Name: "large", Rooms: 1, Publishers: 3, AudioPublishers: 2, Subscribers: 25, Layout: 4, JoinRate: 10,
		Regions: []string{"r1", "r2", "r3", "r4", "r5"}, Spread: true, CrossNode: true},
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	var n []string
	for k := range Presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Preset returns a copy of the named preset.
func Preset(name string) (Scenario, error) {
	s, ok := Presets[name]
	if !ok {
		return Scenario{}, fmt.Errorf("unknown preset %q (have %s)", name, strings.Join(PresetNames(), ", "))
	}
	s.Regions = slices.Clone(s.Regions)
	s.VideoKbps = slices.Clone(s.VideoKbps)
	if s.LinkDelay != nil {
		ld := map[string]time.Duration{}
		for k, v := range s.LinkDelay {
			ld[k] = v
		}
		s.LinkDelay = ld
	}
	return s, nil
}

// LoadScenario reads a scenario file (YAML, or JSON, which is YAML). Unknown
// fields are an error. Fields it leaves out keep the values of base.
func LoadScenario(path string, base Scenario) (Scenario, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return base, err
	}
	return ParseScenario(b, base)
}

// ParseScenario is LoadScenario on bytes.
func ParseScenario(b []byte, base Scenario) (Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	s := base
	if err := dec.Decode(&s); err != nil {
		return base, fmt.Errorf("scenario: %w", err)
	}
	return s, nil
}

// MarshalJSON writes the scenario as its file form (durations as "20s"),
// so a report's scenario can be run again with --scenario.
func (s Scenario) MarshalJSON() ([]byte, error) {
	y, err := yaml.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := yaml.Unmarshal(y, &m); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// withDefaults fills zero fields.
func (s Scenario) withDefaults() Scenario {
	if s.Rooms == 0 {
		s.Rooms = 1
	}
	if s.JoinRate == 0 {
		s.JoinRate = 10
	}
	if s.Duration == 0 {
		s.Duration = 30 * time.Second
	}
	if s.Settle == 0 {
		s.Settle = 2 * time.Second
	}
	if s.Talk == 0 {
		s.Talk = 0.5
	}
	if len(s.VideoKbps) == 0 {
		s.VideoKbps = []int{150, 500, 1700}
	}
	if len(s.Regions) == 0 {
		s.Regions = []string{"local"}
	}
	return s
}

// Validate reports the first thing wrong with a scenario (after defaults).
func (s Scenario) Validate() error {
	switch {
	case s.Rooms < 1:
		return errors.New("rooms must be at least 1")
	case s.Publishers < 0 || s.AudioPublishers < 0 || s.Subscribers < 0:
		return errors.New("participant counts must not be negative")
	case s.Publishers+s.AudioPublishers+s.Subscribers < 1:
		return errors.New("a room needs at least one participant")
	case s.Publishers+s.AudioPublishers == 0:
		return errors.New("a room needs at least one publisher")
	case s.Layout < 0:
		return errors.New("layout must not be negative")
	case s.JoinRate <= 0:
		return errors.New("join rate must be positive")
	case s.Duration <= 0:
		return errors.New("duration must be positive")
	case s.Churn < 0:
		return errors.New("churn must not be negative")
	case s.Talk < 0 || s.Talk > 1:
		return errors.New("talk must be between 0 and 1")
	case len(s.VideoKbps) != 3:
		return errors.New("video_kbps needs three layers")
	}
	for _, k := range s.VideoKbps {
		if k <= 0 || k > 20000 {
			return fmt.Errorf("video layer of %d kbit/s out of range", k)
		}
	}
	for k, v := range s.LinkDelay {
		if _, _, err := s.link(k); err != nil {
			return err
		}
		if v < 0 {
			return fmt.Errorf("link delay %s is negative", k)
		}
	}
	for k, v := range s.LinkLoss {
		if _, _, err := s.link(k); err != nil {
			return err
		}
		if v < 0 || v >= 1 {
			return fmt.Errorf("link loss %s must be in [0, 1)", k)
		}
	}
	return nil
}

// link parses "a-b" into two known regions.
func (s Scenario) link(k string) (string, string, error) {
	a, b, ok := strings.Cut(k, "-")
	if !ok || !slices.Contains(s.Regions, a) || !slices.Contains(s.Regions, b) || a == b {
		return "", "", fmt.Errorf("link %q: want REGION-REGION of two regions in %v", k, s.Regions)
	}
	return a, b, nil
}

// ParseLinks parses "eu-us=40ms,us-ap=60ms" (delays) into a map.
func ParseLinks(v string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, kv := range strings.Split(v, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, d, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("link %q: want REGION-REGION=DURATION", kv)
		}
		dur, err := time.ParseDuration(d)
		if err != nil {
			return nil, fmt.Errorf("link %q: %w", kv, err)
		}
		out[k] = dur
	}
	return out, nil
}

// perRoom is the number of participants of one room.
func (s Scenario) perRoom() int { return s.Publishers + s.AudioPublishers + s.Subscribers }

// tileHeight is the height of one tile for the layout.
func tileHeight(layout int) int {
	switch {
	case layout == 1:
		return 720
	case layout >= 2 && layout <= 4:
		return 360
	}
	return 180
}
