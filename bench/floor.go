package bench

import "math"

// Floor is the raw cost of one datagram on the node's CPU, measured in the
// same run as the node: a loopback UDP send plus receive by one thread
// pinned there, no crypto, no SFU. The node's CPU per forwarded packet
// divided by it says how much the SFU adds to what the kernel needs anyway.
type Floor struct {
	CPU    int     `json:"cpu"`
	US100  float64 `json:"us_100b"`  // µs per 100-byte datagram
	US1000 float64 `json:"us_1000b"` // µs per 1000-byte datagram
	// MeanBytes is the mean size of what subscribers received; AtMeanUS
	// the floor interpolated (linearly, clamped) at that size.
	MeanBytes int     `json:"mean_bytes"`
	AtMeanUS  float64 `json:"at_mean_us"`
	// Ratio is CPU per forwarded packet (the node counters' when there,
	// else the subscribers') over AtMeanUS; 0 when either is unknown.
	Ratio float64 `json:"ratio"`
}

const (
	floorPackets = 20000 // datagrams per round
	floorRounds  = 5     // the median is kept
)

// reportFloor measures the floor on the node's CPU (one pinned local node)
// and its ratio to the node's CPU per forwarded packet.
func (r *runner) reportFloor(rep *Report) {
	if r.pin == nil {
		return
	}
	f := Floor{CPU: r.pin.node}
	var err error
	if f.US100, err = measureFloor(f.CPU, 100, floorPackets, floorRounds); err != nil {
		r.log.Warn("raw floor", "err", err)
		return
	}
	if f.US1000, err = measureFloor(f.CPU, 1000, floorPackets, floorRounds); err != nil {
		r.log.Warn("raw floor", "err", err)
		return
	}
	f.US100, f.US1000 = round3(f.US100), round3(f.US1000)
	if rep.ForwardedPPS > 0 {
		f.MeanBytes = int(math.Round(rep.ForwardedKbps * 1000 / 8 / rep.ForwardedPPS))
	}
	f.AtMeanUS = round3(floorAt(f.US100, f.US1000, f.MeanBytes))
	per := rep.CPUPerBridgePacketUS
	if per == nil {
		per = rep.CPUPerPacketUS
	}
	if per != nil && f.AtMeanUS > 0 {
		f.Ratio = round3(*per / f.AtMeanUS)
	}
	rep.Floor = &f
}

// floorAt interpolates the floor linearly between 100 and 1000 bytes,
// clamped to the measured ends.
func floorAt(us100, us1000 float64, size int) float64 {
	x := min(max(float64(size), 100), 1000)
	return us100 + (us1000-us100)*(x-100)/900
}
