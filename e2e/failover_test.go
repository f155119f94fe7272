package e2e

import (
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// TestBrowserFailover (issue 12, failover): three nodes, eu-1 and eu-2 in
// one region and us-1 in another; a page enters through eu-1, another
// through us-1, and they see each other over the cascade. eu-1 is killed
// with SIGKILL mid-meeting: the first page reconnects through another
// node by itself (the web client's failover: its own node, then
// /alternates) with the same participant ID, republishes, and both pages
// decode each other's video again; the second keeps listing the first
// after the dead node's grace period, so the moved person never left.
func TestBrowserFailover(t *testing.T) {
	if !inNamespace(t, "TestBrowserFailover") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)

	nodes, _ := startCluster(t, bin, []nodeSpec{{name: "eu-1", region: "eu"}, {name: "eu-2", region: "eu"}, {name: "us-1", region: "us"}})

	room := roomname.New()
	alice := newBrowser(t, chromium, "alice", true)
	bob := newBrowser(t, chromium, "bob", true)
	alice.navigate(t, nodes[0].URL+"/"+url.PathEscape(room)+"?prejoin=0#name=Alice")
	bob.navigate(t, nodes[2].URL+"/"+url.PathEscape(room)+"?prejoin=0#name=Bob")
	for _, b := range []*browser{alice, bob} {
		waitFor(t, b, "joined", 60*time.Second, `!!(window.meshmeet && window.meshmeet.joined)`, func(j bool) bool { return j })
		waitFor(t, b, "the other listed", 60*time.Second, `window.meshmeet.participants.length`, func(n int) bool { return n == 1 })
		waitFor(t, b, "the other's video decoded", 120*time.Second, perTrackExpr, func(s []int) bool { return countAtLeast(s, 10) >= 1 })
	}
	before := waitFor(t, alice, "alice's node", 5*time.Second, `window.meshmeet.node`, func(string) bool { return true })
	if before != "" && before != nodes[0].URL { // "": the node the page was loaded from
		t.Fatalf("alice is on %q, want eu-1 (%s): placement moved her before the kill", before, nodes[0].URL)
	}
	id := waitFor(t, alice, "alice's ID", 5*time.Second, `window.meshmeet.participant`, func(s string) bool { return s != "" })

	if err := nodes[0].kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	node := waitFor(t, alice, "alice on another node", 60*time.Second, `window.meshmeet.node`,
		func(s string) bool { return s != "" && s != nodes[0].URL })
	t.Logf("alice moved to %s %v after the kill", node, time.Since(killed).Round(time.Millisecond))
	id2 := waitFor(t, alice, "alice joined again", 30*time.Second, `window.meshmeet.joined ? window.meshmeet.participant : ''`,
		func(s string) bool { return s != "" })
	if id2 != id {
		t.Errorf("alice came back as %q, was %q", id2, id)
	}
	base := waitFor(t, bob, "bob's frames", 5*time.Second, perTrackExpr, func([]int) bool { return true })
	waitFor(t, bob, "bob decodes alice again", 60*time.Second, perTrackExpr,
		func(s []int) bool { return len(s) > len(base) || maxOf(s) > maxOf(base)+30 })
	waitFor(t, alice, "alice decodes bob again", 60*time.Second, perTrackExpr, func(s []int) bool { return countAtLeast(s, 10) >= 1 })
	t.Logf("media back both ways %v after the kill", time.Since(killed).Round(time.Millisecond))

	// The dead node's participants leave the others' rosters after a grace
	// period (signaling.PeerGrace, 10 s): alice, now on another node, stays.
	time.Sleep(15 * time.Second)
	waitFor(t, bob, "bob still lists alice", 5*time.Second, `window.meshmeet.participants.map((p) => p.id)`,
		func(s []string) bool { return contains(s, id) })
	bob.checkConsole(t)
}

func maxOf(s []int) int {
	m := 0
	for _, v := range s {
		m = max(m, v)
	}
	return m
}
