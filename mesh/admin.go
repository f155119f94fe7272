package mesh

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Status is the cluster as one node sees it: the answer of the admin status
// request. It never holds a room key or name.
type Status struct {
	Node    string         `json:"node"`
	Members []MemberStatus `json:"members"`
	// Leader is the raft leader's node name, "" when there is none.
	Leader string `json:"leader"`
	// Voters are the node names in the raft configuration.
	Voters []string `json:"voters"`
	// Rooms is the number of live rooms; -1 when the directory is
	// unavailable.
	Rooms int `json:"rooms"`
}

// MemberStatus is one member in Status.
type MemberStatus struct {
	Name         string   `json:"name"`
	State        string   `json:"state"`
	Region       string   `json:"region"`
	Lat          *float64 `json:"lat,omitempty"`
	Lon          *float64 `json:"lon,omitempty"`
	Voter        bool     `json:"voter"`
	Participants int      `json:"participants"`
	Capacity     int      `json:"capacity"`
	CPU          float64  `json:"cpu"`
	BitrateBps   int64    `json:"bitrate_bps"`
	Draining     bool     `json:"draining"`
	SignalingURL string   `json:"signaling_url,omitempty"`
}

// Status returns the cluster's state as this node sees it.
func (n *Node) Status(ctx context.Context) Status {
	s := Status{Node: n.cfg.NodeName, Rooms: -1}
	for _, m := range n.Members() {
		ms := MemberStatus{Name: m.Name, State: string(m.State), Region: m.Meta.Region, Voter: m.Meta.Voter,
			Participants: m.Meta.Participants, Capacity: m.Meta.Capacity, CPU: m.Meta.CPU,
			BitrateBps: m.Meta.BitrateBps, Draining: m.Meta.Draining, SignalingURL: m.Meta.SignalingURL}
		if m.Meta.HasGeo {
			la, lo := m.Meta.Lat, m.Meta.Lon
			ms.Lat, ms.Lon = &la, &lo
		}
		s.Members = append(s.Members, ms)
	}
	s.Leader, s.Voters = n.clusterInfo(ctx)
	if c, err := n.Rooms(ctx); err == nil {
		s.Rooms = c
	}
	return s
}

// AdminHandler serves GET /admin/status (and /status, for a mount that
// strips the prefix) to requests bearing the admin token. Anything else
// gets 404 or 401 with no detail.
func (n *Node) AdminHandler(token []byte) http.Handler {
	want := []byte(AdminAuthorization(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if len(token) < 16 || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		p := strings.TrimPrefix(r.URL.Path, "/admin")
		if p != "/status" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(n.Status(ctx))
	})
}
