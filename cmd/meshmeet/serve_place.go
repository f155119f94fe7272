package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/placement"
)

// Placement and redirects (issue 12, DESIGN.md section 4): signaling
// places each join on a bridge of the cluster from what gossip says of
// every node, and redirects the client to the chosen node's public URL.

// maxPublicURL is what gossip carries of an advertised URL (mesh.Config
// refuses longer ones).
const maxPublicURL = 64

// maxRegionPin bounds --region-pin: what the room directory stores with
// a meeting created under the pin.
const maxRegionPin = mesh.MaxPin

// ownPublicURL returns the URL this node gossips as its public base URL:
// --public-url, else http:// and the public IP with the HTTP port (dev).
func ownPublicURL(cfg *Config, pubHost, httpPort string) (string, error) {
	u := strings.TrimRight(cfg.Mesh.PublicURL, "/")
	if u == "" {
		return "http://" + net.JoinHostPort(pubHost, httpPort), nil
	}
	p, err := url.Parse(u)
	switch {
	case err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "":
		return "", errors.New("--public-url must be an http or https URL, e.g. https://eu-1.meet.example.org")
	case p.User != nil || p.RawQuery != "" || p.Fragment != "" || p.ForceQuery:
		return "", errors.New("--public-url must not have user info, a query or a fragment")
	case len(u) > maxPublicURL:
		return "", fmt.Errorf("--public-url longer than %d bytes", maxPublicURL)
	}
	return u, nil
}

// regionPin checks --region-pin: at most maxRegionPin region names of
// printable ASCII, each at most 64 bytes.
func regionPin(list []string) ([]string, error) {
	var out []string
	for _, r := range list {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if len(r) > mesh.MaxRegionName || strings.ContainsFunc(r, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			return nil, fmt.Errorf("--region-pin: %q is not a region name", r)
		}
		out = append(out, r)
	}
	if len(out) > maxRegionPin {
		return nil, fmt.Errorf("--region-pin: more than %d regions", maxRegionPin)
	}
	return out, nil
}

// usable reports whether gossip says m can take participants now: alive,
// not leaving.
func usable(m mesh.Member) bool {
	return m.State == mesh.MemberAlive && !m.Meta.Leaving
}

// placeBridges returns signaling.Config.Bridges: every live member of the
// cluster as a placement candidate, with its gossiped region, place,
// load, capacity and public URL.
func placeBridges(members func() []mesh.Member) func() []placement.Bridge {
	return func() []placement.Bridge {
		ms := members()
		out := make([]placement.Bridge, 0, len(ms))
		for _, m := range ms {
			if !usable(m) {
				continue
			}
			out = append(out, bridgeOf(m))
		}
		return out
	}
}

// bridgeOf is a member as placement sees it.
func bridgeOf(m mesh.Member) placement.Bridge {
	return placement.Bridge{
		Name: m.Name, Region: m.Meta.Region, PublicURL: m.Meta.SignalingURL,
		HasGeo: m.Meta.HasGeo, Lat: m.Meta.Lat, Lon: m.Meta.Lon,
		Participants: m.Meta.Participants, CPU: m.Meta.CPU, BitrateBps: m.Meta.BitrateBps,
		Capacity: m.Meta.Capacity, MaxCPU: float64(m.Meta.Cores),
		Draining: m.Meta.Draining,
	}
}

// placeRegions returns signaling.Config.Regions (GET /regions): one probe
// URL per region, of a live node that is not draining (this node in its
// own region; elsewhere the first by name, so every node lists the same).
func placeRegions(members func() []mesh.Member, self string) func() []signaling.RegionProbe {
	return func() []signaling.RegionProbe {
		ms := members()
		sort.Slice(ms, func(i, j int) bool {
			if (ms[i].Name == self) != (ms[j].Name == self) {
				return ms[i].Name == self
			}
			return ms[i].Name < ms[j].Name
		})
		seen := map[string]bool{}
		var out []signaling.RegionProbe
		for _, m := range ms {
			if !usable(m) || m.Meta.Draining || m.Meta.Region == "" || m.Meta.SignalingURL == "" || seen[m.Meta.Region] {
				continue
			}
			seen[m.Meta.Region] = true
			out = append(out, signaling.RegionProbe{Region: m.Meta.Region, ProbeURL: m.Meta.SignalingURL + "/probe"})
		}
		return out
	}
}

// originHosts checks --cluster-url and returns each URL's host[:port].
func originHosts(urls []string) ([]string, error) {
	var out []string
	for _, s := range urls {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || len(s) > 256 {
			return nil, fmt.Errorf("--cluster-url %q: an http or https URL, e.g. https://meet.example.org", s)
		}
		out = append(out, u.Host)
	}
	if len(out) > maxRegionPin {
		return nil, fmt.Errorf("--cluster-url: more than %d", maxRegionPin)
	}
	return out, nil
}
