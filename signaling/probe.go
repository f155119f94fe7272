package signaling

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
)

// RegionProbe is one region of the cluster and the URL of one of its
// nodes' probe endpoint, as GET /regions lists them.
type RegionProbe struct {
	Region string `json:"region"`
	// ProbeURL is an absolute http(s) URL ending in /probe.
	ProbeURL string `json:"probe"`
}

// Bounds on what GET /regions serves: gossip is bounded already
// (mesh.NodeMeta), these keep a misconfigured callback from producing a
// large answer.
const (
	maxRegions       = 64
	maxRegionNameLen = 64
	maxProbeURLLen   = 256
)

// probeBody is the whole answer of GET /probe: constant, so it says
// nothing about the node, its rooms or the client.
var probeBody = []byte("ok\n")

// probeETag lets a cache revalidate the probe: the answer to a revalidation
// is a bodiless 304, which is still a full round trip to this node.
const probeETag = `"probe-1"`

// handleProbe serves GET /probe, which clients time to find their nearest
// region (issue 12 item 1).
//
// Caching: "no-cache" lets a browser or proxy store the answer but makes it
// revalidate with this node before every use, so each measurement is a
// round trip to the node (a 304 when the client sends If-None-Match).
// Clients should still fetch with cache: "no-store".
//
// CORS: "Access-Control-Allow-Origin: *" without Allow-Credentials. A web
// client that entered through one node must time the other regions' nodes,
// which are other origins; the answer is a constant and no cookie is set
// or read, and a browser never sends credentials to a "*" origin, so any
// page reading it learns nothing that timing a no-cors request would not
// already tell it. A list of the cluster's own origins would need every
// node's public URL on every node and protect nothing. Timing-Allow-Origin
// gives the client the Resource Timing breakdown (DNS, TCP and TLS apart
// from the request itself).
func (s *Server) handleProbe(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", probeETag)
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Timing-Allow-Origin", "*")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Header.Get("If-None-Match") == probeETag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(probeBody)
}

// handleRegions serves GET /regions: the cluster's regions with one probe
// URL each, from Config.Regions. Same origin as the page that asks, so no
// CORS; not cached (membership changes). Only region names and node URLs
// are listed: no room, participant or load.
func (s *Server) handleRegions(w http.ResponseWriter, r *http.Request) {
	var list []RegionProbe
	if s.cfg.Regions != nil {
		list = validRegions(s.cfg.Regions())
	}
	if list == nil {
		list = []RegionProbe{}
	}
	body, err := json.Marshal(struct {
		Region  string        `json:"region"`
		Regions []RegionProbe `json:"regions"`
	}{s.cfg.Region, list})
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(body)
}

// validRegions keeps the well-formed entries of in, one per region (the
// first), sorted by region, at most maxRegions. It does not modify in.
func validRegions(in []RegionProbe) []RegionProbe {
	out := make([]RegionProbe, 0, min(len(in), maxRegions))
	seen := make(map[string]bool, len(in))
	for _, rp := range in {
		if rp.Region == "" || len(rp.Region) > maxRegionNameLen || !probePrintable(rp.Region) ||
			seen[rp.Region] || !validProbeURL(rp.ProbeURL) {
			continue
		}
		seen[rp.Region] = true
		out = append(out, rp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Region < out[j].Region })
	if len(out) > maxRegions {
		out = out[:maxRegions]
	}
	return out
}

// validProbeURL: an absolute http or https URL with a host, no user info,
// query or fragment, at most maxProbeURLLen bytes.
func validProbeURL(s string) bool {
	if s == "" || len(s) > maxProbeURLLen || !probePrintable(s) {
		return false
	}
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	return (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" &&
		u.User == nil && u.RawQuery == "" && u.Fragment == "" && !u.ForceQuery
}

// probePrintable reports whether s has only printable ASCII.
func probePrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
