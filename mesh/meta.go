package mesh

import (
	"encoding/json"
	"errors"
	"math"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// Load is a node's current load, gossiped with its metadata.
type Load struct {
	Participants int
	// CPU is the process's CPU use in cores (1.5 = one and a half cores).
	CPU float64
	// BitrateBps is the media bitrate the bridge forwards, in bits/s.
	BitrateBps int64
}

// NodeMeta is what a node gossips about itself (memberlist node metadata,
// at most memberlist.MetaMaxSize bytes encoded).
type NodeMeta struct {
	Region string  `json:"rg,omitempty"`
	HasGeo bool    `json:"g,omitempty"`
	Lat    float64 `json:"la,omitempty"`
	Lon    float64 `json:"lo,omitempty"`
	// SignalingURL is the node's public base URL (serve --public-url):
	// where clients are redirected to and where its /probe is timed.
	SignalingURL string  `json:"su,omitempty"`
	WebRTCAddr   string  `json:"wa,omitempty"`
	RelayAddr    string  `json:"ra,omitempty"`
	TURNAddr     string  `json:"ta,omitempty"`
	Capacity     int     `json:"c,omitempty"`
	Participants int     `json:"p,omitempty"`
	CPU          float64 `json:"cpu,omitempty"`
	BitrateBps   int64   `json:"br,omitempty"`
	// Cores is the CPU cores the process may use (GOMAXPROCS): the
	// capacity CPU is measured against in placement's stress.
	Cores    int  `json:"co,omitempty"`
	Draining bool `json:"d,omitempty"`
	// RaftID is this process's raft server ID (fresh at every start).
	RaftID   string `json:"ri,omitempty"`
	RaftAddr string `json:"rad,omitempty"`
	Voter    bool   `json:"v,omitempty"`
	// InCluster: this node's raft holds a configuration, so a cluster
	// exists and fresh voters must wait to be added instead of bootstrapping.
	InCluster bool `json:"ic,omitempty"`
	// Leaving is set just before a graceful leave, so the others can tell
	// a node that left from one that died (memberlist reports both alike).
	Leaving bool `json:"lv,omitempty"`
}

// maxAddrLen bounds every address and URL in NodeMeta so the encoding fits
// in memberlist.MetaMaxSize.
const maxAddrLen = 64

// maxCores bounds NodeMeta.Cores.
const maxCores = 1 << 16

func (m *NodeMeta) encode() []byte {
	b, _ := json.Marshal(m)
	return b
}

var errBadMeta = errors.New("bad node metadata")

func decodeMeta(b []byte) (NodeMeta, error) {
	var m NodeMeta
	if len(b) == 0 || len(b) > memberlist.MetaMaxSize {
		return m, errBadMeta
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, errBadMeta
	}
	if err := m.validate(); err != nil {
		return m, err
	}
	// Accept only what this node could gossip itself: the canonical
	// encoding must fit too (escapes and replaced bytes can make it longer
	// than the input), so a decoded value always round-trips.
	if len(m.encode()) > memberlist.MetaMaxSize {
		return m, errBadMeta
	}
	return m, nil
}

func (m *NodeMeta) validate() error {
	for _, s := range []string{m.Region, m.SignalingURL, m.WebRTCAddr, m.RelayAddr, m.TURNAddr, m.RaftID, m.RaftAddr} {
		if len(s) > maxAddrLen+maxBridgeName || !printable(s) {
			return errBadMeta
		}
	}
	bad := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) }
	switch {
	case bad(m.Lat) || bad(m.Lon) || bad(m.CPU):
		return errBadMeta
	case m.Lat < -90 || m.Lat > 90 || m.Lon < -180 || m.Lon > 180:
		return errBadMeta
	case m.Capacity < 0 || m.Participants < 0 || m.CPU < 0 || m.BitrateBps < 0 || m.Cores < 0 || m.Cores > maxCores:
		return errBadMeta
	}
	return nil
}

// printable reports whether s is valid UTF-8 with no control or
// replacement characters: names and addresses, never arbitrary bytes.
func printable(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// MemberState is what gossip says of a member.
type MemberState string

// Member states. memberlist's events tell alive from gone; the Leaving flag
// in the metadata tells a node that left from one that died.
const (
	MemberAlive MemberState = "alive"
	MemberDead  MemberState = "dead"
	MemberLeft  MemberState = "left"
)

// Member is one node as this node sees it.
type Member struct {
	Name  string
	State MemberState
	Meta  NodeMeta
	// Since is when this node last saw the state change.
	Since time.Time
}
