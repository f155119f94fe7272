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
	// RelayLinks are the answering node's relay links (one per peer node
	// it shares a meeting with); absent when the node reports none.
	RelayLinks []LinkStatus `json:"relay_links,omitempty"`
}

// LinkStatus is one relay link of the answering node in Status: the QUIC
// connection to a peer node, as the relay measures it over its last
// statistics interval. It names nodes, never rooms.
type LinkStatus struct {
	Peer    string `json:"peer"`
	Dialled bool   `json:"dialled"` // this node dialled the link
	// RTTMicros is QUIC's smoothed round-trip time in microseconds.
	RTTMicros int64 `json:"rtt_us"`
	// Loss is the fraction of QUIC packets lost, 0..1.
	Loss float64 `json:"loss"`
	// SendBps and RecvBps are the media bit rates each way.
	SendBps uint64 `json:"send_bps"`
	RecvBps uint64 `json:"recv_bps"`
	// LayerCap is the highest simulcast layer sent on the link now (the
	// relay lowers it under bandwidth pressure).
	LayerCap int `json:"layer_cap"`
	// Rooms is the number of meetings the peer shares on the link.
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

// Status returns the cluster's state as this node sees it, with the relay
// links of Config.RelayLinks.
func (n *Node) Status(ctx context.Context) Status { return n.status(ctx, n.cfg.RelayLinks) }

func (n *Node) status(ctx context.Context, relayLinks func() []LinkStatus) Status {
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
	if relayLinks != nil {
		s.RelayLinks = relayLinks()
	}
	return s
}

// AdminHandler serves GET /admin/status (and /status, for a mount that
// strips the prefix) to requests bearing the admin token. Anything else
// gets 404 or 401 with no detail.
func (n *Node) AdminHandler(token []byte) http.Handler {
	return n.AdminHandlerWith(token, n.cfg.RelayLinks)
}

// AdminHandlerWith is AdminHandler with relayLinks in place of
// Config.RelayLinks, for a caller whose relay starts after the node (the
// relay's TLS comes from the node's PKI).
func (n *Node) AdminHandlerWith(token []byte, relayLinks func() []LinkStatus) http.Handler {
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
		json.NewEncoder(w).Encode(n.status(ctx, relayLinks))
	})
}
