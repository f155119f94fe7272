package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// TestBrowser runs the real server and two headless Chromiums with fake
// media devices in a network namespace that has only lo: the landing page
// warns about guessable names, and two participants see and hear each
// other, see each other's names, and chat.
func TestBrowser(t *testing.T) {
	if !inNamespace(t, "TestBrowser") {
		return
	}
	srv := startServer(t, os.Getenv(envServer))
	chromium := os.Getenv(envChromium)
	t.Logf("server at %s", srv.URL)

	alice := newBrowser(t, chromium, "alice", true)
	bob := newBrowser(t, chromium, "bob", true)

	t.Run("landing", func(t *testing.T) { testLanding(t, srv, alice) })
	if t.Failed() {
		return
	}
	t.Run("meeting", func(t *testing.T) { testMeeting(t, srv, chromium, alice, bob) })
	if t.Failed() {
		return
	}
	t.Run("through TURN", func(t *testing.T) { testTURNOnly(t, srv, alice, bob) })
}

// pairsExpr gives the local candidate type and relay protocol of the
// selected pair of each of the page's PeerConnections ("relay/udp" when
// media goes through TURN over UDP).
const pairsExpr = `(async () => {
  const out = [];
  for (const pc of [window.meshmeet.pub, window.meshmeet.sub]) {
    if (!pc) return null;
    const r = await pc.getStats();
    let pair = null;
    r.forEach((x) => { if (x.type === 'transport' && x.selectedCandidatePairId) pair = r.get(x.selectedCandidatePairId); });
    if (!pair) return null;
    const c = r.get(pair.localCandidateId);
    out.push(c.candidateType + '/' + (c.relayProtocol || ''));
  }
  return out;
})()`

// testTURNOnly: with ?turn=1 both pages use only TURN-relayed candidates
// (iceTransportPolicy "relay"), so every packet crosses meshmeet's TURN
// server, here in dev mode through its exception for the node's own bridge;
// each page still decodes the other's video and receives its audio.
func testTURNOnly(t *testing.T, srv *server, alice, bob *browser) {
	page := srv.URL + "/" + url.PathEscape(roomname.New()) + "?prejoin=0&turn=1"
	alice.navigate(t, page+"#name=Alice")
	bob.navigate(t, page+"#name=Bob")
	for _, b := range []*browser{alice, bob} {
		types := waitFor(t, b, "selected candidate pairs on both PeerConnections", 60*time.Second, pairsExpr,
			func(ts []string) bool { return len(ts) == 2 })
		if !strings.HasPrefix(types[0], "relay/") || !strings.HasPrefix(types[1], "relay/") {
			t.Errorf("%s: selected local candidates %v, want relay on both PeerConnections", b.name, types)
		}
		t.Logf("%s: selected local candidates %v", b.name, types)
		first := waitFor(t, b, "remote video decoded and audio received through TURN", 90*time.Second, mediaExpr,
			func(s mediaStats) bool { return s.FramesDecoded > 0 && s.AudioPackets > 0 })
		waitFor(t, b, "more video frames decoded through TURN", 60*time.Second, mediaExpr,
			func(s mediaStats) bool {
				return s.FramesDecoded >= first.FramesDecoded+10 && s.AudioPackets > first.AudioPackets
			})
		t.Logf("%s: media through TURN: %+v", b.name, first)
	}
}

var camelName = regexp.MustCompile(`^(?:[A-Z][a-z]+){5}$`)

type landingState struct {
	Room    string `json:"room"`
	Warning string `json:"warning"` // text of the visible warning, "" when hidden
	Words   bool   `json:"words"`
}

const landingExpr = `(async () => {
  await window.meshmeet.ready;
  const w = document.getElementById('room-warning');
  return {
    room: document.getElementById('room').value,
    warning: w.hidden ? '' : w.textContent,
    words: !!window.meshmeet.words,
  };
})()`

func testLanding(t *testing.T, srv *server, b *browser) {
	b.navigate(t, srv.URL+"/")
	st := waitFor(t, b, "landing page with a generated room name", 30*time.Second,
		`window.meshmeet && window.meshmeet.ready && `+landingExpr,
		func(s landingState) bool { return s.Words && s.Room != "" })
	if !camelName.MatchString(st.Room) {
		t.Errorf("generated room name %q is not five CamelCase words", st.Room)
	}
	if st.Warning != "" {
		t.Errorf("generated name %q shows the warning %q", st.Room, st.Warning)
	}
	if r := roomname.Check(st.Room); r != roomname.OK {
		t.Errorf("the server's check calls the generated name %q guessable (%s)", st.Room, r)
	}

	// Type a guessable name: the warning appears.
	b.do(t, chromedp.Evaluate[chromedp.Void](`document.getElementById('room').value = ''`),
		chromedp.SendKeys(chromedp.ID("room"), "test"))
	st = waitFor(t, b, `warning for "test"`, 10*time.Second, landingExpr,
		func(s landingState) bool { return s.Room == "test" && s.Warning != "" })
	if !strings.Contains(st.Warning, "easy to guess") {
		t.Errorf(`warning for "test" is %q, want it to say the name is easy to guess`, st.Warning)
	}

	// "New name" replaces it with a name that is not guessable.
	b.do(t, chromedp.Click(chromedp.ID("new-name")))
	st = waitFor(t, b, "a new generated name without warning", 10*time.Second, landingExpr,
		func(s landingState) bool { return s.Room != "test" })
	if !camelName.MatchString(st.Room) || st.Warning != "" {
		t.Errorf(`after "New name": room %q, warning %q; want five CamelCase words and no warning`, st.Room, st.Warning)
	}

	waitFor(t, b, "the camera preview", 30*time.Second, `document.getElementById('preview').videoWidth`,
		func(w int) bool { return w > 0 })
	shot(t, b, "meshmeet-e2e-landing.png")

	// /<room>#name=... opens that room's pre-join with the name filled in.
	b.navigate(t, srv.URL+"/BraveOttersChaseSilverComets#name=Carol%20C.")
	pre := waitFor(t, b, "pre-join of a named room", 30*time.Second,
		`(() => ({ room: document.getElementById('room').value, name: document.getElementById('display-name').value,
		  prejoin: !document.getElementById('prejoin').hidden, joined: !!window.meshmeet.joined }))()`,
		func(p struct {
			Room, Name      string
			Prejoin, Joined bool
		}) bool {
			return p.Room != ""
		})
	if pre.Room != "BraveOttersChaseSilverComets" || pre.Name != "Carol C." || !pre.Prejoin || pre.Joined {
		t.Errorf("pre-join of /BraveOttersChaseSilverComets#name=Carol%%20C.: %+v", pre)
	}
	// "Join meeting" joins that room under that name, then "Leave" leaves.
	b.do(t, chromedp.Click(chromedp.ID("join")))
	in := waitFor(t, b, "joined from the pre-join", 30*time.Second,
		`window.meshmeet.joined ? { path: location.pathname, label: document.querySelector('#tiles .tile .tile-name').textContent } : null`,
		func(p struct{ Path, Label string }) bool { return p.Path != "" })
	if in.Path != "/BraveOttersChaseSilverComets" || in.Label != "Carol C. (you)" {
		t.Errorf("after Join: path %q, own tile %q", in.Path, in.Label)
	}
	b.do(t, chromedp.Click(chromedp.ID("btn-leave")))
	waitFor(t, b, "the left view", 10*time.Second, `!document.getElementById('left').hidden && !window.meshmeet.joined`,
		func(v bool) bool { return v })

	// The client's check mirrors roomname.Check.
	names := []string{
		"test", "Test123", "daily-standup", "Daily Standup 2024", "meeting2024",
		"weeklysync", "BlueOtters2024", "blue otter 12345", "BraveOttersChaseSilverComets",
		"qwertyuiopasdf", "ÜberGeheimesTreffen", "1234567890", "CalmBadgersZz99",
		"teamretrospective", "plannings", "a-b-c-d-e-f-g-h-i-j",
	}
	for range 20 {
		names = append(names, roomname.New())
	}
	arg, _ := json.Marshal(names)
	got := waitFor(t, b, "the client's guessable-name check", 10*time.Second,
		fmt.Sprintf(`window.meshmeet.ready.then(() => %s.map((n) => window.meshmeet.roomname.check(n, window.meshmeet.words)))`, arg),
		func(r []string) bool { return len(r) == len(names) })
	for i, n := range names {
		if want := string(roomname.Check(n)); got[i] != want {
			t.Errorf("check(%q): client says %q, server says %q", n, got[i], want)
		}
	}
}

type mediaStats struct {
	FramesDecoded int `json:"framesDecoded"`
	AudioPackets  int `json:"audioPackets"`
	AudioSamples  int `json:"audioSamples"`
	VideoWidth    int `json:"videoWidth"` // widest remote tile video, as the page shows it
}

const mediaExpr = `(async () => {
  const pc = window.meshmeet && window.meshmeet.sub;
  if (!pc) return null;
  const r = await pc.getStats();
  const s = { framesDecoded: 0, audioPackets: 0, audioSamples: 0, videoWidth: 0 };
  r.forEach((x) => {
    if (x.type !== 'inbound-rtp') return;
    if (x.kind === 'video') s.framesDecoded += x.framesDecoded || 0;
    if (x.kind === 'audio') {
      s.audioPackets += x.packetsReceived || 0;
      s.audioSamples += x.totalSamplesReceived || 0;
    }
  });
  for (const v of document.querySelectorAll('#tiles .tile[data-track] video')) {
    s.videoWidth = Math.max(s.videoWidth, v.videoWidth);
  }
  return s;
})()`

type chatEntry struct {
	Participant string `json:"participant"`
	Name        string `json:"name"`
	Text        string `json:"text"`
	Self        bool   `json:"self"`
	Pending     bool   `json:"pending"`
}

func testMeeting(t *testing.T, srv *server, chromium string, alice, bob *browser) {
	room := roomname.New()
	page := srv.URL + "/" + url.PathEscape(room) + "?prejoin=0"
	alice.navigate(t, page+"#name=Alice")
	bob.navigate(t, page+"#name=Bob")

	for _, b := range []*browser{alice, bob} {
		waitFor(t, b, "joined", 30*time.Second, `!!(window.meshmeet && window.meshmeet.joined)`,
			func(j bool) bool { return j })
	}
	for _, p := range []struct {
		b     *browser
		other string
	}{{alice, "Bob"}, {bob, "Alice"}} {
		waitFor(t, p.b, "the other participant in the list", 30*time.Second,
			`window.meshmeet.participants.map((p) => p.name)`,
			func(names []string) bool { return slices.Contains(names, p.other) })
		list := waitFor(t, p.b, "the participant list on screen", 10*time.Second,
			`document.getElementById('people-list').innerText`,
			func(s string) bool { return strings.Contains(s, p.other) })
		if !strings.Contains(list, "(you)") {
			t.Errorf("%s: participant list %q does not show the participant itself", p.b.name, list)
		}
	}

	// Each one decodes the other's video and receives the other's audio,
	// and the decoded frame count keeps growing.
	for _, b := range []*browser{alice, bob} {
		first := waitFor(t, b, "remote video decoded and audio received", 90*time.Second, mediaExpr,
			func(s mediaStats) bool { return s.FramesDecoded > 0 && s.AudioPackets > 0 && s.AudioSamples > 0 })
		t.Logf("%s: %+v", b.name, first)
		later := waitFor(t, b, "more video frames decoded", 60*time.Second, mediaExpr,
			func(s mediaStats) bool {
				return s.FramesDecoded >= first.FramesDecoded+10 && s.AudioPackets > first.AudioPackets && s.VideoWidth > 0
			})
		t.Logf("%s: %+v", b.name, later)
	}

	// A remote tile about 250 pixels high asks the bridge for 360 lines at
	// most. (Which layer then arrives depends on what the publishing
	// Chromium sends: on a loaded machine it drops its upper layers. So the
	// width is logged, not asserted.)
	for _, b := range []*browser{alice, bob} {
		waitFor(t, b, "prefs asking for 360 lines", 30*time.Second,
			`Object.values(window.meshmeet.prefs)`,
			func(h []int) bool { return slices.Equal(h, []int{360}) })
		s := waitFor(t, b, "remote video", 10*time.Second, mediaExpr,
			func(s mediaStats) bool { return s.VideoWidth > 0 })
		t.Logf("%s: receives %d pixels wide", b.name, s.VideoWidth)
	}

	// Chat, typed and sent through the form.
	const text = "Hello from Alice"
	alice.do(t, chromedp.SendKeys(chromedp.ID("chat-input"), text), chromedp.Click(chromedp.ID("chat-send")))
	got := waitFor(t, bob, "Alice's chat message", 30*time.Second, `window.meshmeet.chat`,
		func(c []chatEntry) bool {
			return slices.ContainsFunc(c, func(m chatEntry) bool { return m.Text == text })
		})
	i := slices.IndexFunc(got, func(m chatEntry) bool { return m.Text == text })
	if m := got[i]; m.Name != "Alice" || m.Self {
		t.Errorf("bob got %+v, want a message from Alice", m)
	}
	waitFor(t, alice, "the server's echo of Alice's own message", 30*time.Second, `window.meshmeet.chat`,
		func(c []chatEntry) bool {
			return slices.ContainsFunc(c, func(m chatEntry) bool { return m.Text == text && m.Self && !m.Pending })
		})
	bobLog := waitFor(t, bob, "the chat message on screen", 10*time.Second,
		`document.getElementById('chat-log').innerText`,
		func(s string) bool { return strings.Contains(s, text) })
	if !strings.Contains(bobLog, "Alice") {
		t.Errorf("bob's chat log %q does not name Alice", bobLog)
	}

	// Mute and camera off reach the other side.
	alice.do(t, chromedp.Click(chromedp.ID("btn-mic")), chromedp.Click(chromedp.ID("btn-cam")))
	waitFor(t, bob, "Alice muted with camera off", 30*time.Second,
		`window.meshmeet.participants.filter((p) => p.name === 'Alice').map((p) => p.muted)`,
		func(m []struct{ Audio, Video bool }) bool { return len(m) == 1 && m[0].Audio && m[0].Video })
	waitFor(t, bob, "Alice's tile showing muted", 10*time.Second,
		`(() => { const el = [...document.querySelectorAll('#tiles .tile')].find((e) => e.querySelector('.tile-name').textContent === 'Alice');
		  return !!el && !el.querySelector('.tile-muted').hidden && !el.querySelector('.avatar').hidden; })()`,
		func(v bool) bool { return v })
	// With Alice silent, the bridge names Bob the dominant speaker (the
	// fake microphone beeps); both pages highlight his tile and list entry.
	bobID := waitFor(t, bob, "bob's participant ID", 5*time.Second, `window.meshmeet.participant`,
		func(s string) bool { return s != "" })
	speakerStart := time.Now()
	for _, b := range []*browser{alice, bob} {
		waitFor(t, b, "Bob highlighted as the active speaker", 60*time.Second,
			`(() => { const s = window.meshmeet.speaker;
			  const tile = document.querySelector('#tiles .tile.speaking');
			  const li = document.querySelector('#people-list li.speaking');
			  return s && tile && li && tile.dataset.participant === s && li.dataset.participant === s ? s : ''; })()`,
			func(s string) bool { return s == bobID })
	}
	t.Logf("Bob became the highlighted speaker %s after Alice muted", time.Since(speakerStart).Round(time.Second))
	alice.do(t, chromedp.Click(chromedp.ID("btn-mic")), chromedp.Click(chromedp.ID("btn-cam")))
	waitFor(t, bob, "Alice unmuted", 30*time.Second,
		`window.meshmeet.participants.filter((p) => p.name === 'Alice').map((p) => p.muted)`,
		func(m []struct{ Audio, Video bool }) bool { return len(m) == 1 && !m[0].Audio && !m[0].Video })

	testScreenShare(t, alice, bob)
	testResume(t, alice, bob)

	// Connection quality is measured from getStats.
	waitFor(t, alice, "a connection quality reading", 30*time.Second, `window.meshmeet.quality.level`,
		func(l string) bool { return l == "good" || l == "fair" || l == "poor" })

	// The page loaded nothing from anywhere but the server.
	for _, b := range []*browser{alice, bob} {
		urls := waitFor(t, b, "resource list", 10*time.Second,
			`[location.href, ...performance.getEntriesByType('resource').map((e) => e.name)]`,
			func([]string) bool { return true })
		for _, u := range urls {
			if !strings.HasPrefix(u, srv.URL+"/") {
				t.Errorf("%s: the page loaded %q, which is not on the server %s", b.name, u, srv.URL)
			}
		}
	}

	alice.checkConsole(t)
	bob.checkConsole(t)

	// Carol has no camera and no microphone: she joins to watch and listen,
	// publishes nothing, and the others see her with mic and camera off.
	testListener(t, page, chromium, alice)

	// A screenshot of the meeting view, to look at by hand.
	shot(t, bob, "meshmeet-e2e-meeting.png")

	// Alice leaves: Bob sees her go.
	alice.do(t, chromedp.Click(chromedp.ID("btn-leave")))
	waitFor(t, alice, "the left view", 10*time.Second, `!document.getElementById('left').hidden`,
		func(v bool) bool { return v })
	waitFor(t, bob, "Alice gone from the list", 30*time.Second,
		`window.meshmeet.participants.map((p) => p.name)`,
		func(names []string) bool { return !slices.Contains(names, "Alice") })

	// "Rejoin" brings her back as a new participant.
	alice.do(t, chromedp.Click(chromedp.ID("rejoin")))
	waitFor(t, alice, "joined again", 30*time.Second, `!!(window.meshmeet && window.meshmeet.joined)`,
		func(j bool) bool { return j })
	waitFor(t, bob, "Alice back in the list", 30*time.Second,
		`window.meshmeet.participants.map((p) => p.name)`,
		func(names []string) bool { return slices.Contains(names, "Alice") })
}

func testListener(t *testing.T, page, chromium string, alice *browser) {
	t.Helper()
	carol := newBrowser(t, chromium, "carol", false)
	carol.navigate(t, page+"#name=Carol")
	waitFor(t, carol, "joined without devices", 30*time.Second,
		`window.meshmeet && window.meshmeet.joined ? window.meshmeet.pub.getSenders().length : -1`,
		func(n int) bool { return n == 0 })
	first := waitFor(t, carol, "Alice's and Bob's media", 60*time.Second, mediaExpr,
		func(s mediaStats) bool { return s.FramesDecoded > 0 && s.AudioPackets > 0 && s.VideoWidth > 0 })
	waitFor(t, carol, "more frames", 60*time.Second, mediaExpr,
		func(s mediaStats) bool { return s.FramesDecoded >= first.FramesDecoded+10 })
	waitFor(t, carol, "two video tiles", 30*time.Second,
		`[...document.querySelectorAll('#tiles .tile[data-track] video')].filter((v) => v.videoWidth > 0).length`,
		func(n int) bool { return n == 2 })
	waitFor(t, alice, "Carol with mic and camera off", 30*time.Second,
		`window.meshmeet.participants.filter((p) => p.name === 'Carol').map((p) => p.muted)`,
		func(m []struct{ Audio, Video bool }) bool { return len(m) == 1 && m[0].Audio && m[0].Video })
	carol.checkConsole(t)
	carol.do(t, chromedp.Click(chromedp.ID("btn-leave")))
	waitFor(t, alice, "Carol gone", 30*time.Second,
		`window.meshmeet.participants.map((p) => p.name)`,
		func(names []string) bool { return !slices.Contains(names, "Carol") })
}

// testScreenShare: Alice shares her screen, an extra video track that Bob
// decodes in a tile of its own, then stops, and the tile goes away.
func testScreenShare(t *testing.T, alice, bob *browser) {
	t.Helper()
	alice.do(t, chromedp.Click(chromedp.ID("btn-screen")))
	sharing := waitFor(t, alice, "screen share started (or refused)", 30*time.Second,
		`(() => { const s = window.meshmeet.session; return s.screen ? 'on' : (window.meshmeet.errors.length ? 'error' : ''); })()`,
		func(s string) bool { return s != "" })
	if sharing != "on" {
		t.Errorf("screen share did not start: %s", sharing)
		return
	}
	const screenTile = `[...document.querySelectorAll('#tiles .tile')].filter((e) => e.querySelector('.tile-name').textContent === 'Alice (screen)').map((e) => e.querySelector('video').videoWidth)`
	waitFor(t, bob, "Alice's screen in a tile of its own", 60*time.Second, screenTile,
		func(w []int) bool { return len(w) == 1 && w[0] > 0 })
	alice.do(t, chromedp.Click(chromedp.ID("btn-screen")))
	waitFor(t, bob, "Alice's screen tile gone", 30*time.Second, screenTile,
		func(w []int) bool { return len(w) == 0 })
}

// testResume drops Bob's WebSocket: the client resumes the same
// participant, media keeps flowing and chat still arrives.
func testResume(t *testing.T, alice, bob *browser) {
	t.Helper()
	id := waitFor(t, bob, "bob's participant ID", 5*time.Second, `window.meshmeet.participant`,
		func(s string) bool { return s != "" })
	before := waitFor(t, bob, "media before the drop", 10*time.Second, mediaExpr,
		func(s mediaStats) bool { return s.FramesDecoded > 0 })
	bob.do(t, chromedp.Evaluate[chromedp.Void](`window.meshmeet.session.ws.close()`))
	waitFor(t, bob, "resumed", 30*time.Second,
		`window.meshmeet.resumes === 1 && window.meshmeet.joined && window.meshmeet.participant`,
		func(s string) bool { return s != "" })
	if got, err := chromedp.Run(bob.ctx, chromedp.Evaluate[string](`window.meshmeet.participant`)); err != nil || got != id {
		t.Errorf("after resume bob is %q (%v), want the same participant %q", got, err, id)
	}
	waitFor(t, bob, "media still flowing after resume", 30*time.Second, mediaExpr,
		func(s mediaStats) bool { return s.FramesDecoded > before.FramesDecoded+10 })
	const text = "Still there, Bob?"
	alice.do(t, chromedp.SendKeys(chromedp.ID("chat-input"), text), chromedp.Click(chromedp.ID("chat-send")))
	waitFor(t, bob, "chat after resume", 30*time.Second, `window.meshmeet.chat.map((m) => m.text)`,
		func(c []string) bool { return slices.Contains(c, text) })

	// A resume the server refuses (here: a wrong secret) makes the client
	// join afresh, as a new participant with new PeerConnections.
	bob.do(t, chromedp.Evaluate[chromedp.Void](`window.meshmeet.session.secret = 'not-the-secret'; window.meshmeet.session.ws.close()`))
	newID := waitFor(t, bob, "joined again as a new participant", 30*time.Second,
		`window.meshmeet.joined ? window.meshmeet.participant : ''`,
		func(s string) bool { return s != "" && s != id })
	waitFor(t, alice, "the new Bob, and the old one gone", 30*time.Second,
		`window.meshmeet.participants.filter((p) => p.name === 'Bob').map((p) => p.id)`,
		func(ids []string) bool { return slices.Equal(ids, []string{newID}) })
	first := waitFor(t, bob, "media on the new PeerConnections", 60*time.Second, mediaExpr,
		func(s mediaStats) bool { return s.FramesDecoded > 0 && s.AudioPackets > 0 })
	waitFor(t, bob, "more frames on the new PeerConnections", 60*time.Second, mediaExpr,
		func(s mediaStats) bool { return s.FramesDecoded >= first.FramesDecoded+10 })
	waitFor(t, alice, "the new Bob's video", 60*time.Second, mediaExpr,
		func(s mediaStats) bool { return s.VideoWidth > 0 })
	// The server replays recent chat to the new participant: each message
	// still shows once.
	texts := waitFor(t, bob, "the chat log", 10*time.Second,
		`[...document.querySelectorAll('#chat-log .chat-text')].map((e) => e.textContent)`,
		func([]string) bool { return true })
	if n := len(slices.Compact(slices.Sorted(slices.Values(texts)))); n != len(texts) || n < 2 {
		t.Errorf("bob's chat log after joining afresh: %q; want each message once", texts)
	}
}

// shot saves a screenshot of b's page as name in the temporary directory,
// for a person to look at.
func shot(t *testing.T, b *browser, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("%s: screenshot: %v", b.name, err)
		return
	}
	path := filepath.Join(os.TempDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("write screenshot: %v", err)
		return
	}
	t.Logf("screenshot of %s's page: %s", b.name, path)
}

// browser is one headless Chromium with its own profile.
type browser struct {
	name string
	ctx  context.Context

	mu       sync.Mutex
	console  []string // every console message
	problems []string // exceptions, errors and security (CSP) messages
}

// checkConsole fails the test if the page threw, logged an error or broke
// its Content-Security-Policy.
func (b *browser) checkConsole(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("%s console: %s", b.name, p)
	}
}

// newBrowser starts a headless Chromium. With devices, it has a fake camera
// and a fake microphone (playing a steady tone); without, it has none.
func newBrowser(t *testing.T, chromium, name string, devices bool) *browser {
	t.Helper()
	// A steady tone rather than the fake device's short beeps, so that the
	// bridge's audio levels (and its dominant speaker) do not depend on
	// when a beep falls.
	tone := filepath.Join(t.TempDir(), "tone.wav")
	if err := os.WriteFile(tone, toneWAV(48000, 440, 2*time.Second), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 720),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
	)
	if devices {
		opts = append(opts,
			chromedp.Flag("use-fake-device-for-media-stream", true),
			chromedp.Flag("use-file-for-fake-audio-capture", tone))
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	b := &browser{name: name, ctx: ctx}
	// The first run starts the browser; it must have no timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 720)); err != nil {
		cancel()
		acancel()
		t.Fatalf("start chromium for %s: %v", name, err)
	}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m.String())
			if m.IsException() || m.Type == chromedp.ConsoleError || m.Source == "security" {
				b.problems = append(b.problems, m.String())
			}
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		acancel()
		<-done
		if t.Failed() {
			b.mu.Lock()
			defer b.mu.Unlock()
			t.Logf("%s console:\n%s", name, strings.Join(b.console, "\n"))
		}
	})
	return b
}

func (b *browser) navigate(t *testing.T, u string) {
	t.Helper()
	b.do(t, chromedp.Navigate(u))
}

func (b *browser) do(t *testing.T, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", b.name, err)
	}
}

// waitFor evaluates expr (awaiting a promise) in b until ok accepts its
// value, and fails the test after timeout.
func waitFor[T any](t *testing.T, b *browser, what string, timeout time.Duration, expr string, ok func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last T
	var lastErr error
	seen := false
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
		cancel()
		if err == nil {
			last, seen = v, true
			if ok(v) {
				return v
			}
		} else {
			lastErr = err
		}
		if time.Now().After(deadline) {
			if seen {
				t.Fatalf("%s: %s: not there after %s; last value %+v (last error %v)", b.name, what, timeout, last, lastErr)
			}
			t.Fatalf("%s: %s: not there after %s: %v", b.name, what, timeout, lastErr)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// toneWAV returns a mono 16-bit PCM WAV file of a sine tone at about
// -12 dBFS, a whole number of periods long so that it loops without a click.
func toneWAV(rate, freq int, d time.Duration) []byte {
	n := int(int64(rate)*int64(d)/int64(time.Second)) / (rate / freq) * (rate / freq)
	b := make([]byte, 44+2*n)
	le := binary.LittleEndian
	copy(b[0:], "RIFF")
	le.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	le.PutUint32(b[16:], 16)
	le.PutUint16(b[20:], 1) // PCM
	le.PutUint16(b[22:], 1) // mono
	le.PutUint32(b[24:], uint32(rate))
	le.PutUint32(b[28:], uint32(2*rate))
	le.PutUint16(b[32:], 2)
	le.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	le.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		v := 0.25 * math.Sin(2*math.Pi*float64(freq)*float64(i)/float64(rate))
		le.PutUint16(b[44+2*i:], uint16(int16(v*math.MaxInt16)))
	}
	return b
}
