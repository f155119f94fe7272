// Package bench is meshmeet's load generator, behind `meshmeet bench`.
//
// A run drives a cluster with synthetic participants: Go WebRTC clients
// (package client) that join through the public signaling API, publish
// browser-shaped simulcast VP8 and Opus-sized audio, and subscribe as a
// browser would, showing as many video tiles as the Scenario's layout. It
// is a black-box client: it imports signaling/wire and nothing else of the
// server.
//
// Run takes Params: the Scenario (a preset, a YAML or JSON file, flags),
// the nodes to drive (URLs of a running cluster, or Local nodes it starts
// itself as `meshmeet serve` processes, with emulated delay and loss on
// the paths between regions), and the guards that fail a run. It ramps the
// participants up at the scenario's join rate, waits for the media to
// settle, and measures a steady window: join time, time to first frame,
// one-way delay (every packet carries a Stamp with its send time), loss
// and jitter per stream, freezes of shown videos, forwarded packets per
// second, and, for local nodes, the nodes' CPU per forwarded packet and
// memory per participant. The generator watches its own CPU as well: when
// it, not the cluster, may be the bottleneck, the report says so.
//
// The Report prints as a table, JSON and a self-contained HTML page with
// plots. Room names are random and never logged.
package bench
