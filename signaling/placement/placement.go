package placement

import (
	"math"
	"time"
)

// DefaultThreshold is the stress above which the bridge already holding a
// meeting stops being preferred: past it, a new participant goes to the
// least stressed bridge of the region and the meeting spans bridges.
const DefaultThreshold = 0.8

// Bridge is one candidate, built by the caller from gossip (mesh.NodeMeta)
// and its own count of joins placed.
type Bridge struct {
	Name      string
	Region    string
	PublicURL string
	HasGeo    bool
	Lat, Lon  float64

	// Gossiped load, as of the bridge's last report.
	Participants int
	CPU          float64 // cores in use
	BitrateBps   int64

	// Capacity is the configured participant capacity; 0 means none is
	// configured and participants do not count towards stress.
	Capacity int
	// MaxCPU is the cores the bridge may use (0: CPU does not count).
	MaxCPU float64
	// MaxBitrateBps is the forwarding bitrate it may carry (0: does not count).
	MaxBitrateBps int64

	Draining bool
	// PlacedSinceReport is the joins this node placed on the bridge since
	// its last load report; they are not in Participants/CPU/Bitrate yet.
	PlacedSinceReport int
}

// Input is everything a decision depends on. Decide does not keep it.
type Input struct {
	Bridges []Bridge
	// Room maps the names of the bridges already holding the meeting to
	// their participant counts in it.
	Room map[string]int
	// RTTs are the client's measured round trips per region (optional).
	RTTs map[string]time.Duration
	// RTTSlack: the reached region's measured RTT counts this much lower
	// when regions are ordered, so that the region the client reached
	// (GeoDNS or a latency-routed name chose it) keeps it unless another
	// measures more than RTTSlack nearer: measurement noise, or a region
	// a few milliseconds nearer, is not worth a redirect.
	RTTSlack time.Duration
	// ReachedRegion is the region of the node the client reached.
	ReachedRegion string
	// ReachedBridge is the name of the node the client reached. Among the
	// bridges of a region it ranks ReachedSlack lower in stress than it is
	// and wins ties, so that equally loaded bridges do not redirect
	// clients to each other (a redirect costs a reconnect). It never makes
	// a full or draining bridge eligible.
	ReachedBridge string
	ReachedSlack  float64
	// Client position, a tie-breaker only.
	HasClientGeo         bool
	ClientLat, ClientLon float64
	// Pin, when not empty, lists the only regions the room may use.
	Pin []string
	// Threshold is the holding bridge's stress limit; 0 means DefaultThreshold.
	Threshold float64
}

// Decision is the chosen bridge.
type Decision struct {
	Bridge    string
	Region    string
	PublicURL string
	// Stress is the chosen bridge's corrected stress before this join.
	Stress float64
	// Holder: the bridge already held the meeting.
	Holder bool
	// Spilled: the bridge is not in the first region in order (that
	// region was full or had no usable bridge).
	Spilled bool
}

// Stress is b's load against its capacity, the largest of the
// participant, CPU and bitrate ratios, with the joins placed since its
// last report added at the bridge's current per-participant CPU and
// bitrate (one participant's worth of a share of capacity when it has
// none yet). 0 when nothing is configured to measure against.
func Stress(b Bridge) float64 {
	placed := float64(b.PlacedSinceReport)
	var s float64
	if b.Capacity > 0 {
		s = (float64(b.Participants) + placed) / float64(b.Capacity)
	}
	if b.MaxCPU > 0 {
		cpu := b.CPU
		if b.Participants > 0 {
			cpu += placed * b.CPU / float64(b.Participants)
		}
		s = math.Max(s, cpu/b.MaxCPU)
	}
	if b.MaxBitrateBps > 0 {
		br := float64(b.BitrateBps)
		if b.Participants > 0 {
			br += placed * float64(b.BitrateBps) / float64(b.Participants)
		}
		s = math.Max(s, br/float64(b.MaxBitrateBps))
	}
	return s
}

// Decide picks the bridge for one joining participant. It errors with
// ErrNoBridge, ErrFull or ErrPinnedFull.
func Decide(in Input) (Decision, error) {
	thr := in.Threshold
	if thr <= 0 {
		thr = DefaultThreshold
	}
	pinned := len(in.Pin) > 0
	allowed := func(region string) bool {
		if !pinned {
			return true
		}
		for _, p := range in.Pin {
			if p == region {
				return true
			}
		}
		return false
	}

	// Allowed regions with any bridge, draining ones included so that a
	// region whose bridges all drain still counts as the nearest (a
	// participant placed elsewhere has spilled).
	var regions []string
	usable := 0
	for i := range in.Bridges {
		b := &in.Bridges[i]
		if !allowed(b.Region) {
			continue
		}
		if !b.Draining {
			usable++
		}
		if !contains(regions, b.Region) {
			regions = append(regions, b.Region)
		}
	}
	if usable == 0 {
		if pinned {
			return Decision{}, ErrPinnedFull
		}
		return Decision{}, ErrNoBridge
	}
	ref := in.refPoint()
	sortRegions(regions, in, ref)

	first := true
	for _, region := range regions {
		if d, ok := in.inRegion(region, thr); ok {
			// Not the first region, or the reached one had no usable bridge.
			// A pinned room reached outside its regions has not spilled.
			d.Spilled = !first || (len(in.RTTs) == 0 && in.ReachedRegion != "" && allowed(in.ReachedRegion) && region != in.ReachedRegion)
			return d, nil
		}
		first = false
	}
	if pinned {
		return Decision{}, ErrPinnedFull
	}
	return Decision{}, ErrFull
}

// inRegion chooses within one region; ok is false when it is full.
func (in *Input) inRegion(region string, thr float64) (Decision, bool) {
	var best *Bridge
	var bestStress, bestRank, bestDist float64
	for i := range in.Bridges {
		b := &in.Bridges[i]
		if b.Draining || b.Region != region {
			continue
		}
		s := Stress(*b)
		if s >= 1 {
			continue
		}
		if _, holds := in.Room[b.Name]; holds && s < thr {
			return decision(b, s, true), true
		}
		rank := s
		if b.Name == in.ReachedBridge {
			rank = s - in.ReachedSlack
		}
		dist := in.clientDist(b)
		if best == nil || rank < bestRank ||
			(rank == bestRank && in.preferOnTie(b, best, dist, bestDist)) {
			best, bestStress, bestRank, bestDist = b, s, rank, dist
		}
	}
	if best == nil {
		return Decision{}, false
	}
	_, holds := in.Room[best.Name]
	return decision(best, bestStress, holds), true
}

// preferOnTie breaks an equal rank: the reached bridge, then the one
// nearer the client, then the lower name.
func (in *Input) preferOnTie(b, best *Bridge, dist, bestDist float64) bool {
	if r, rb := b.Name == in.ReachedBridge, best.Name == in.ReachedBridge; r != rb {
		return r
	}
	if dist != bestDist {
		return dist < bestDist
	}
	return b.Name < best.Name
}

func decision(b *Bridge, s float64, holder bool) Decision {
	return Decision{Bridge: b.Name, Region: b.Region, PublicURL: b.PublicURL, Stress: s, Holder: holder}
}

// clientDist is the distance from the client to b, or +Inf without
// positions (so it never decides anything then).
func (in *Input) clientDist(b *Bridge) float64 {
	if !in.HasClientGeo || !b.HasGeo {
		return math.Inf(1)
	}
	return distance(in.ClientLat, in.ClientLon, b.Lat, b.Lon)
}

type point struct {
	ok       bool
	lat, lon float64
}

// refPoint is where region distances are measured from: the client when
// it gave a position, else a bridge of the region it reached.
func (in *Input) refPoint() point {
	if in.HasClientGeo {
		return point{true, in.ClientLat, in.ClientLon}
	}
	for _, b := range in.Bridges {
		if b.Region == in.ReachedRegion && b.HasGeo {
			return point{true, b.Lat, b.Lon}
		}
	}
	return point{}
}

// sortRegions orders regions: measured RTT first (lower first, unmeasured
// after; the reached region, unmeasured, as if it measured the best RTT),
// without an RTT to any of them the reached region first; then distance
// from ref; then name. Insertion sort: a cluster has a handful of regions.
func sortRegions(regions []string, in Input, ref point) {
	dist := make(map[string]float64, len(regions))
	for _, r := range regions {
		dist[r] = math.Inf(1)
	}
	if ref.ok {
		for _, b := range in.Bridges {
			if _, ok := dist[b.Region]; ok && b.HasGeo {
				dist[b.Region] = math.Min(dist[b.Region], distance(ref.lat, ref.lon, b.Lat, b.Lon))
			}
		}
	}
	// best is the lowest RTT the client measured to a candidate region.
	// The reached region, when its probe was lost (it has no RTT), counts
	// as if it measured best: one lost probe does not send the client
	// away from the region GeoDNS chose.
	var best time.Duration
	measured := false
	for _, r := range regions {
		if d, ok := in.RTTs[r]; ok && (!measured || d < best) {
			best, measured = d, true
		}
	}
	rtt := func(r string) (time.Duration, bool) {
		d, ok := in.RTTs[r]
		if !ok && measured && r == in.ReachedRegion {
			d, ok = best, true
		}
		if ok && r == in.ReachedRegion {
			d -= in.RTTSlack
		}
		return d, ok
	}
	less := func(a, b string) bool {
		ra, oka := rtt(a)
		rb, okb := rtt(b)
		switch {
		case oka && okb && ra != rb:
			return ra < rb
		case oka != okb:
			return oka
		case oka && (a == in.ReachedRegion) != (b == in.ReachedRegion):
			return a == in.ReachedRegion // equal after the slack
		}
		if !measured && (a == in.ReachedRegion) != (b == in.ReachedRegion) {
			return a == in.ReachedRegion
		}
		if dist[a] != dist[b] {
			return dist[a] < dist[b]
		}
		return a < b
	}
	for i := 1; i < len(regions); i++ {
		for j := i; j > 0 && less(regions[j], regions[j-1]); j-- {
			regions[j], regions[j-1] = regions[j-1], regions[j]
		}
	}
}

// distance is the great-circle distance in radians (haversine).
func distance(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dlat := (lat2 - lat1) * rad
	dlon := (lon2 - lon1) * rad
	a := math.Sin(dlat/2)*math.Sin(dlat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dlon/2)*math.Sin(dlon/2)
	return 2 * math.Asin(math.Sqrt(math.Min(1, a)))
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
