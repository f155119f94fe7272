package placement

import (
	"errors"
	"testing"
	"time"
)

func br(name, region string, participants, capacity int) Bridge {
	return Bridge{Name: name, Region: region, PublicURL: "https://" + name + ".example", Participants: participants, Capacity: capacity}
}

func TestDecide(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		in      Input
		want    string // bridge name
		spilled bool
		err     error
	}{
		{
			name: "region match by RTT beats the reached node's region",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 90 * ms, "us": 20 * ms},
				ReachedRegion: "eu",
			},
			want: "us1",
		},
		{
			name: "no RTTs: the reached region",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 50, 100)},
				ReachedRegion: "us",
			},
			want: "us1",
		},
		{
			name: "holder preferred over an idler bridge",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 50, 100), br("eu2", "eu", 0, 100)},
				Room:          map[string]int{"eu1": 5},
				ReachedRegion: "eu",
			},
			want: "eu1",
		},
		{
			name: "holder over its threshold: least stressed instead",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 85, 100), br("eu2", "eu", 30, 100), br("eu3", "eu", 10, 100)},
				Room:          map[string]int{"eu1": 5},
				ReachedRegion: "eu",
			},
			want: "eu3",
		},
		{
			name: "overload by CPU though participants are few",
			in: Input{
				Bridges: []Bridge{
					{Name: "eu1", Region: "eu", Participants: 10, Capacity: 100, CPU: 3.8, MaxCPU: 4},
					{Name: "eu2", Region: "eu", Participants: 40, Capacity: 100, CPU: 1, MaxCPU: 4},
				},
				ReachedRegion: "eu",
			},
			want: "eu2",
		},
		{
			name: "overload by bitrate",
			in: Input{
				Bridges: []Bridge{
					{Name: "eu1", Region: "eu", Participants: 10, Capacity: 100, BitrateBps: 900e6, MaxBitrateBps: 1e9},
					{Name: "eu2", Region: "eu", Participants: 40, Capacity: 100, BitrateBps: 100e6, MaxBitrateBps: 1e9},
				},
				ReachedRegion: "eu",
			},
			want: "eu2",
		},
		{
			name: "region full: spill to the next by RTT",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 100, 100), br("ap1", "ap", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 10 * ms, "us": 80 * ms, "ap": 200 * ms},
				ReachedRegion: "eu",
			},
			want: "us1", spilled: true,
		},
		{
			name: "region full, no RTTs: spill to the nearest region by distance",
			in: Input{
				Bridges: []Bridge{
					{Name: "fra", Region: "eu", HasGeo: true, Lat: 50.1, Lon: 8.7, Participants: 100, Capacity: 100},
					{Name: "syd", Region: "ap", HasGeo: true, Lat: -33.9, Lon: 151.2, Capacity: 100},
					{Name: "nyc", Region: "us", HasGeo: true, Lat: 40.7, Lon: -74, Capacity: 100},
				},
				ReachedRegion: "eu",
			},
			want: "nyc", spilled: true,
		},
		{
			name: "pinned room never spills",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 100, 100), br("us1", "us", 0, 100)},
				ReachedRegion: "eu",
				Pin:           []string{"eu"},
			},
			err: ErrPinnedFull,
		},
		{
			name: "pinned room goes to its region even when another is nearer",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 10, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 100 * ms, "us": 5 * ms},
				ReachedRegion: "us",
				Pin:           []string{"eu"},
			},
			want: "eu1",
		},
		{
			name: "draining bridges never chosen, even when holder and idle",
			in: Input{
				Bridges: []Bridge{
					{Name: "eu1", Region: "eu", Capacity: 100, Draining: true},
					br("eu2", "eu", 60, 100),
				},
				Room:          map[string]int{"eu1": 3},
				ReachedRegion: "eu",
			},
			want: "eu2",
		},
		{
			name: "only draining bridges",
			in: Input{
				Bridges:       []Bridge{{Name: "eu1", Region: "eu", Capacity: 100, Draining: true}},
				ReachedRegion: "eu",
			},
			err: ErrNoBridge,
		},
		{
			name: "every region full",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 100, 100), br("us1", "us", 120, 100)},
				ReachedRegion: "eu",
			},
			err: ErrFull,
		},
		{
			name: "no bridges",
			in:   Input{ReachedRegion: "eu"},
			err:  ErrNoBridge,
		},
		{
			name: "lat/lon breaks a stress tie",
			in: Input{
				Bridges: []Bridge{
					{Name: "a", Region: "eu", HasGeo: true, Lat: 59.3, Lon: 18.1, Participants: 10, Capacity: 100},
					{Name: "b", Region: "eu", HasGeo: true, Lat: 38.7, Lon: -9.1, Participants: 10, Capacity: 100},
				},
				ReachedRegion: "eu",
				HasClientGeo:  true, ClientLat: 40.4, ClientLon: -3.7, // Madrid: Lisbon is nearer
			},
			want: "b",
		},
		{
			name: "lat/lon never beats a lower stress",
			in: Input{
				Bridges: []Bridge{
					{Name: "a", Region: "eu", HasGeo: true, Lat: 59.3, Lon: 18.1, Participants: 10, Capacity: 100},
					{Name: "b", Region: "eu", HasGeo: true, Lat: 38.7, Lon: -9.1, Participants: 11, Capacity: 100},
				},
				ReachedRegion: "eu",
				HasClientGeo:  true, ClientLat: 40.4, ClientLon: -3.7,
			},
			want: "a",
		},
		{
			name: "lat/lon never beats a measured RTT",
			in: Input{
				Bridges: []Bridge{
					{Name: "nyc", Region: "us", HasGeo: true, Lat: 40.7, Lon: -74, Capacity: 100},
					{Name: "fra", Region: "eu", HasGeo: true, Lat: 50.1, Lon: 8.7, Capacity: 100},
				},
				RTTs:          map[string]time.Duration{"us": 30 * ms, "eu": 60 * ms},
				ReachedRegion: "eu",
				HasClientGeo:  true, ClientLat: 48.9, ClientLon: 2.3, // Paris
			},
			want: "nyc",
		},
		{
			name: "lat/lon never beats the reached region without RTTs",
			in: Input{
				Bridges: []Bridge{
					{Name: "nyc", Region: "us", HasGeo: true, Lat: 40.7, Lon: -74, Capacity: 100},
					{Name: "fra", Region: "eu", HasGeo: true, Lat: 50.1, Lon: 8.7, Capacity: 100},
				},
				ReachedRegion: "us",
				HasClientGeo:  true, ClientLat: 48.9, ClientLon: 2.3,
			},
			want: "nyc",
		},
		{
			name: "nearest region by RTT has only draining bridges: spill",
			in: Input{
				Bridges:       []Bridge{{Name: "eu1", Region: "eu", Capacity: 100, Draining: true}, br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 10 * ms, "us": 90 * ms},
				ReachedRegion: "us",
			},
			want: "us1", spilled: true,
		},
		{
			name: "RTTs for some regions only: measured ones before unmeasured others",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("ap1", "ap", 0, 100), br("us1", "us", 99, 100)},
				RTTs:          map[string]time.Duration{"us": 150 * ms},
				ReachedRegion: "us",
			},
			want: "us1",
		},
		{
			name: "reached region's probe lost: it counts as the best measured RTT and keeps the client",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("ap1", "ap", 0, 100), br("us1", "us", 99, 100)},
				RTTs:          map[string]time.Duration{"us": 150 * ms},
				ReachedRegion: "eu",
			},
			want: "eu1",
		},
		{
			name: "reached region's probe lost, another region measured very near: kept by the slack",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100), br("ap1", "ap", 0, 100)},
				RTTs:          map[string]time.Duration{"us": 2 * ms, "ap": 200 * ms},
				RTTSlack:      20 * ms,
				ReachedRegion: "eu", ReachedBridge: "eu1", ReachedSlack: 0.05,
			},
			want: "eu1",
		},
		{
			name: "reached region's probe lost, zero slack: the tie goes to the reached region",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"us": 30 * ms},
				ReachedRegion: "eu",
			},
			want: "eu1",
		},
		{
			name: "reached region's probe lost and the region full: the nearest measured one",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 100, 100), br("us1", "us", 0, 100), br("ap1", "ap", 0, 100)},
				RTTs:          map[string]time.Duration{"us": 30 * ms, "ap": 10 * ms},
				RTTSlack:      20 * ms,
				ReachedRegion: "eu",
			},
			want: "ap1", spilled: true,
		},
		{
			name: "only regions without bridges measured: the reached region first, as without RTTs",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"sa": 10 * ms},
				ReachedRegion: "us",
			},
			want: "us1",
		},
		{
			name: "pinned room reached outside its regions: its nearest measured region",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("ch1", "ch", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 40 * ms, "ch": 30 * ms},
				RTTSlack:      20 * ms,
				ReachedRegion: "us",
				Pin:           []string{"ch", "eu"},
			},
			want: "ch1",
		},
		{
			name: "reached region within RTTSlack of the nearest: no redirect",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 14 * ms, "us": 2 * ms},
				RTTSlack:      20 * ms,
				ReachedRegion: "eu",
			},
			want: "eu1",
		},
		{
			name: "reached region exactly RTTSlack behind: kept",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 40 * ms, "us": 20 * ms},
				RTTSlack:      20 * ms,
				ReachedRegion: "eu",
			},
			want: "eu1",
		},
		{
			name: "another region more than RTTSlack nearer: redirected",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 41 * ms, "us": 20 * ms},
				RTTSlack:      20 * ms,
				ReachedRegion: "eu",
			},
			want: "us1",
		},
		{
			name: "RTTSlack favours only the reached region",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100), br("ap1", "ap", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 90 * ms, "us": 30 * ms, "ap": 20 * ms},
				RTTSlack:      20 * ms,
				ReachedRegion: "eu",
			},
			want: "ap1",
		},
		{
			name: "equal stress: the reached bridge, no redirect",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 10, 100), br("eu2", "eu", 10, 100)},
				ReachedRegion: "eu", ReachedBridge: "eu2",
			},
			want: "eu2",
		},
		{
			name: "reached bridge within its slack stays",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 10, 100), br("eu2", "eu", 14, 100)},
				ReachedRegion: "eu", ReachedBridge: "eu2", ReachedSlack: 0.05,
			},
			want: "eu2",
		},
		{
			name: "reached bridge past its slack: the least stressed",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 10, 100), br("eu2", "eu", 16, 100)},
				ReachedRegion: "eu", ReachedBridge: "eu2", ReachedSlack: 0.05,
			},
			want: "eu1",
		},
		{
			name: "reached bridge in the wrong region by RTT: redirected",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100)},
				RTTs:          map[string]time.Duration{"eu": 80 * ms, "us": 10 * ms},
				ReachedRegion: "eu", ReachedBridge: "eu1", ReachedSlack: 0.05,
			},
			want: "us1",
		},
		{
			name: "holder beats the reached bridge",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 30, 100), br("eu2", "eu", 0, 100)},
				Room:          map[string]int{"eu1": 2},
				ReachedRegion: "eu", ReachedBridge: "eu2", ReachedSlack: 0.05,
			},
			want: "eu1",
		},
		{
			name: "full reached bridge is never kept by its slack",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 50, 100), br("eu2", "eu", 100, 100)},
				ReachedRegion: "eu", ReachedBridge: "eu2", ReachedSlack: 0.5,
			},
			want: "eu1",
		},
		{
			name: "pinned room reached through a node outside its regions",
			in: Input{
				Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("us1", "us", 0, 100)},
				ReachedRegion: "us", ReachedBridge: "us1", ReachedSlack: 0.05,
				Pin: []string{"eu"},
			},
			want: "eu1",
		},
		{
			name: "reached region has only draining bridges: spill",
			in: Input{
				Bridges:       []Bridge{{Name: "eu1", Region: "eu", Capacity: 100, Draining: true}, br("us1", "us", 0, 100)},
				ReachedRegion: "eu",
			},
			want: "us1", spilled: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Decide(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Decide = %+v, %v; want error %v", d, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Bridge != tt.want || d.Spilled != tt.spilled {
				t.Fatalf("Decide = %+v; want bridge %s spilled %v", d, tt.want, tt.spilled)
			}
			if d.PublicURL == "" && tt.want != "" && tt.in.Bridges[0].PublicURL != "" {
				t.Fatalf("decision lacks the public URL: %+v", d)
			}
		})
	}
}

// TestJoinStorm places 300 joins of different meetings in a row with no
// load report in between. Without the placed-joins correction every one
// would go to the bridge that was idlest at the last report.
func TestJoinStorm(t *testing.T) {
	bridges := []Bridge{br("eu1", "eu", 0, 200), br("eu2", "eu", 10, 200), br("eu3", "eu", 20, 200)}
	in := Input{Bridges: bridges, ReachedRegion: "eu"}
	placed := map[string]int{}
	for i := 0; i < 300; i++ {
		d, err := Decide(in)
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		placed[d.Bridge]++
		for j := range in.Bridges {
			if in.Bridges[j].Name == d.Bridge {
				in.Bridges[j].PlacedSinceReport++
			}
		}
	}
	// Expected totals equalise at (0+10+20+300)/3 = 110 each.
	want := map[string]int{"eu1": 110, "eu2": 100, "eu3": 90}
	for name, n := range want {
		if placed[name] != n {
			t.Fatalf("placed %v, want %v", placed, want)
		}
	}
}

// TestJoinStormThroughOneNode: a storm arriving through one node spreads
// over its region once the node is ReachedSlack ahead of the others.
func TestJoinStormThroughOneNode(t *testing.T) {
	in := Input{
		Bridges:       []Bridge{br("eu1", "eu", 0, 100), br("eu2", "eu", 0, 100), br("eu3", "eu", 0, 100)},
		ReachedRegion: "eu", ReachedBridge: "eu1", ReachedSlack: 0.05,
	}
	placed := map[string]int{}
	for i := 0; i < 60; i++ {
		d, err := Decide(in)
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		placed[d.Bridge]++
		for j := range in.Bridges {
			if in.Bridges[j].Name == d.Bridge {
				in.Bridges[j].PlacedSinceReport++
			}
		}
	}
	// eu1 keeps 5 more than the others: 25, 18 and 17 (or 18).
	if placed["eu1"] > 26 || placed["eu2"] < 16 || placed["eu3"] < 16 {
		t.Fatalf("placed %v: the storm piled onto the reached node", placed)
	}
}

// TestJoinStormSpills: a storm fills the region and the rest spill to
// the next, never past capacity.
func TestJoinStormSpills(t *testing.T) {
	in := Input{
		Bridges:       []Bridge{br("eu1", "eu", 0, 10), br("eu2", "eu", 0, 10), br("us1", "us", 0, 10)},
		RTTs:          map[string]time.Duration{"eu": 10 * time.Millisecond, "us": 90 * time.Millisecond},
		ReachedRegion: "eu",
	}
	placed := map[string]int{}
	for i := 0; i < 30; i++ {
		d, err := Decide(in)
		if err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		if (i < 20) == d.Spilled {
			t.Fatalf("join %d: %+v", i, d)
		}
		placed[d.Bridge]++
		for j := range in.Bridges {
			if in.Bridges[j].Name == d.Bridge {
				in.Bridges[j].PlacedSinceReport++
			}
		}
	}
	if placed["eu1"] != 10 || placed["eu2"] != 10 || placed["us1"] != 10 {
		t.Fatalf("placed %v", placed)
	}
	if _, err := Decide(in); !errors.Is(err, ErrFull) {
		t.Fatalf("join 31: %v, want ErrFull", err)
	}
}

func TestStressCorrection(t *testing.T) {
	b := Bridge{Participants: 10, Capacity: 100, CPU: 1, MaxCPU: 4, BitrateBps: 10e6, MaxBitrateBps: 100e6, PlacedSinceReport: 10}
	// 20 participants' worth: 0.2 of capacity, 2 cores of 4, 20 Mb/s of 100.
	if s := Stress(b); s != 0.5 {
		t.Fatalf("Stress = %v, want 0.5 (CPU doubled by the placed joins)", s)
	}
	if s := Stress(Bridge{}); s != 0 {
		t.Fatalf("Stress of an unconfigured bridge = %v", s)
	}
}

func BenchmarkDecide(b *testing.B) {
	// A large cluster: 5 regions of 20 bridges, a meeting on 3 of them.
	var bridges []Bridge
	regions := []string{"eu", "us", "ap", "sa", "af"}
	for i, r := range regions {
		for j := 0; j < 20; j++ {
			bridges = append(bridges, Bridge{
				Name: r + string(rune('a'+j)), Region: r, HasGeo: true, Lat: float64(10 * i), Lon: float64(j),
				Participants: 50 + j, Capacity: 200, CPU: 1 + float64(j)/10, MaxCPU: 8,
				BitrateBps: int64(j) * 1e6, MaxBitrateBps: 1e9,
			})
		}
	}
	in := Input{
		Bridges:       bridges,
		Room:          map[string]int{"eua": 90, "eub": 5, "usa": 3},
		RTTs:          map[string]time.Duration{"eu": 20 * time.Millisecond, "us": 90 * time.Millisecond, "ap": 200 * time.Millisecond},
		ReachedRegion: "us",
		HasClientGeo:  true, ClientLat: 5, ClientLon: 5,
		Threshold: 0.3, // the holder is over it: the whole region is scanned
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decide(in); err != nil {
			b.Fatal(err)
		}
	}
}
