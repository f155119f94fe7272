package signaling_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/web"
)

func TestProbe(t *testing.T) {
	n := startNode(t, nil)
	// A meeting is running: the probe must say nothing of it.
	room := roomname.New()
	join(t, n, room, client.Options{Name: "Alice"})

	req, _ := http.NewRequest("GET", n.URL+"/probe", nil)
	req.Header.Set("Origin", "https://other-node.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("GET /probe = %d %q", resp.StatusCode, body)
	}
	h := resp.Header
	for k, want := range map[string]string{
		"Cache-Control":                    "no-cache",
		"Access-Control-Allow-Origin":      "*",
		"Timing-Allow-Origin":              "*",
		"Content-Security-Policy":          web.ContentSecurityPolicy,
		"Referrer-Policy":                  "no-referrer",
		"X-Content-Type-Options":           "nosniff",
		"Access-Control-Allow-Credentials": "",
		"Set-Cookie":                       "",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if strings.Contains(string(body), room) {
		t.Fatal("probe names the room")
	}

	// Revalidation: a bodiless 304, still answered by the node.
	req, _ = http.NewRequest("GET", n.URL+"/probe", nil)
	req.Header.Set("If-None-Match", h.Get("ETag"))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("revalidated GET /probe = %d %q", resp.StatusCode, body)
	}

	// Only GET (and HEAD) are served.
	resp, err = http.Post(n.URL+"/probe", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /probe = %d", resp.StatusCode)
	}
}

func TestRegions(t *testing.T) {
	regions := []signaling.RegionProbe{
		{Region: "us-east", ProbeURL: "https://us1.example/probe"},
		{Region: "eu-west", ProbeURL: "https://eu1.example/probe"},
		{Region: "eu-west", ProbeURL: "https://eu2.example/probe"},                 // second of a region: dropped
		{Region: "ap", ProbeURL: "javascript:alert(1)"},                            // not http(s): dropped
		{Region: "sa", ProbeURL: "https://user:pw@sa.example/probe"},               // user info: dropped
		{Region: "af", ProbeURL: "https://af.example/probe?room=secret"},           // query: dropped
		{Region: "bad region", ProbeURL: "https://x.example/probe"},                // not printable ASCII: dropped
		{Region: "", ProbeURL: "https://x.example/probe"},                          // no region: dropped
		{Region: "me", ProbeURL: "https://me.example/" + strings.Repeat("a", 300)}, // too long: dropped
	}
	var calls atomic.Int32
	n := startNode(t, func(c *signaling.Config) {
		c.Region = "eu-west"
		c.Regions = func() []signaling.RegionProbe { calls.Add(1); return regions }
	})
	room := roomname.New()
	join(t, n, room, client.Options{Name: "Alice"})

	got := getRegions(t, n.URL)
	want := `{"region":"eu-west","regions":[{"region":"eu-west","probe":"https://eu1.example/probe"},{"region":"us-east","probe":"https://us1.example/probe"}]}`
	if got != want {
		t.Fatalf("GET /regions = %s\nwant %s", got, want)
	}
	if calls.Load() == 0 {
		t.Fatal("Regions callback not called")
	}
	if strings.Contains(got, room) {
		t.Fatal("regions names the room")
	}
	if regions[0].Region != "us-east" {
		t.Fatal("the callback's slice was modified")
	}

	// Without a callback the list is empty, not null.
	n2 := startNode(t, nil)
	var doc struct {
		Regions []signaling.RegionProbe `json:"regions"`
	}
	raw := getRegions(t, n2.URL)
	if err := json.Unmarshal([]byte(raw), &doc); err != nil || doc.Regions == nil || len(doc.Regions) != 0 {
		t.Fatalf("GET /regions without callback = %s (%v)", raw, err)
	}
}

func TestRegionsBounded(t *testing.T) {
	var many []signaling.RegionProbe
	for i := 0; i < 1000; i++ {
		r := "r" + strings.Repeat("x", i%50) + string(rune('a'+i%26)) + string(rune('a'+i/26%26))
		many = append(many, signaling.RegionProbe{Region: r, ProbeURL: "https://n.example/probe"})
	}
	n := startNode(t, func(c *signaling.Config) {
		c.Regions = func() []signaling.RegionProbe { return many }
	})
	var doc struct {
		Regions []signaling.RegionProbe `json:"regions"`
	}
	if err := json.Unmarshal([]byte(getRegions(t, n.URL)), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Regions) != 64 {
		t.Fatalf("%d regions served, want the bound 64", len(doc.Regions))
	}
}

func getRegions(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/regions")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /regions = %d", resp.StatusCode)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	if resp.Header.Get("Content-Security-Policy") != web.ContentSecurityPolicy {
		t.Fatal("no security headers")
	}
	return string(body)
}
