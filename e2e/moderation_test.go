package e2e

import (
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// TestBrowserModeration: a page turns the lobby on in the security dialog;
// a second page opening the room waits on the lobby screen and sees
// nothing of the meeting (no participant, track, chat or PeerConnection)
// while chat goes on, until the first admits it from the participant list;
// then it is in the meeting with the history. A third page joins after
// the lobby is turned off; the first removes the second from its tile:
// the removed page lands on the after-meeting screen, and its media stops
// reaching the third page. The speaker stats view lists the talkers.
func TestBrowserModeration(t *testing.T) {
	if !inNamespace(t, "TestBrowserModeration") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)
	srv := startServer(t, bin)

	room := roomname.New()
	page := srv.URL + "/" + url.PathEscape(room)
	alice := newBrowser(t, chromium, "alice", true)
	bob := newBrowser(t, chromium, "bob", true)
	carol := newBrowser(t, chromium, "carol", false)

	alice.navigate(t, page+"?prejoin=0#name=Alice")
	waitFor(t, alice, "Alice joined", 30*time.Second, `window.meshmeet.joined`, func(b bool) bool { return b })
	alice.do(t,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('security-dialog').showModal()`),
		chromedp.Click(chromedp.ID("lobby-on")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('security-dialog').close()`))
	waitFor(t, alice, "the lobby on", 30*time.Second, `!!(window.meshmeet.session.lobby && window.meshmeet.session.lobby.on)`,
		func(b bool) bool { return b })

	// Bob waits, and learns nothing while the meeting goes on.
	bob.navigate(t, page+"?prejoin=0#name=Bob")
	waitFor(t, bob, "Bob on the lobby screen", 30*time.Second,
		`window.meshmeet.session && window.meshmeet.session.waiting === true && !document.getElementById('lobby-waiting').hidden`,
		func(b bool) bool { return b })
	alice.do(t, chromedp.Evaluate[chromedp.Void](`window.meshmeet.sendChat('said before Bob came in')`))
	waitFor(t, alice, "Alice sees Bob waiting", 30*time.Second,
		`[...document.querySelectorAll('#people-list li[data-waiting] .person-name')].map((e) => e.textContent).join('|')`,
		func(s string) bool { return strings.Contains(s, "Bob") })
	const nothing = `(() => { const m = window.meshmeet; return JSON.stringify({p: m.participants.length, t: m.tracks.length, c: m.chat.length, pub: !!m.pub, sub: !!m.sub, joined: m.joined}); })()`
	if got := waitFor(t, bob, "what Bob knows while waiting", 5*time.Second, nothing, func(string) bool { return true }); got != `{"p":0,"t":0,"c":0,"pub":false,"sub":false,"joined":false}` {
		t.Fatalf("a waiting page knows %s", got)
	}
	alice.do(t, chromedp.Evaluate[chromedp.Void](`document.querySelector('#people-list li[data-waiting] .mod-actions button.primary').click()`))
	waitFor(t, bob, "Bob admitted", 30*time.Second, `window.meshmeet.joined && document.getElementById('lobby-waiting').hidden`, func(b bool) bool { return b })
	waitFor(t, bob, "Bob sees Alice and the history", 30*time.Second,
		`window.meshmeet.participants.map((p) => p.name).join(',') + '|' + window.meshmeet.chat.map((c) => c.text).join(',')`,
		func(s string) bool { return s == "Alice|said before Bob came in" })
	bobID := waitFor(t, bob, "Bob's ID", 5*time.Second, `window.meshmeet.participant`, func(s string) bool { return s != "" })

	// Lobby off; Carol joins straight in and receives Bob's media.
	alice.do(t,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('security-dialog').showModal()`),
		chromedp.Click(chromedp.ID("lobby-on")),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('security-dialog').close()`))
	waitFor(t, alice, "the lobby off", 30*time.Second, `!!(window.meshmeet.session.lobby && !window.meshmeet.session.lobby.on)`,
		func(b bool) bool { return b })
	carol.navigate(t, page+"?prejoin=0#name=Carol")
	waitFor(t, carol, "Carol joined without waiting", 30*time.Second, `window.meshmeet.joined`, func(b bool) bool { return b })
	bobBytes := `(async () => {
  // Bob's track IDs, kept once seen: they leave the roster when he does.
  window.bobTracks = window.bobTracks || new Set();
  for (const t of window.meshmeet.tracks) if (t.participant === ` + "'" + bobID + "'" + `) window.bobTracks.add(t.id);
  const ids = window.bobTracks;
  if (!window.meshmeet.sub) return 0;
  let n = 0;
  (await window.meshmeet.sub.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && ids.has(s.trackIdentifier)) n += s.bytesReceived; });
  return n;
})()`
	waitFor(t, carol, "Carol receives Bob's media", 30*time.Second, bobBytes, func(n float64) bool { return n > 20000 })

	// Speaker stats: the talkers have time.
	alice.do(t, chromedp.Click(chromedp.ID("stats-toggle")))
	waitFor(t, alice, "speaker stats listed", 30*time.Second,
		`document.querySelectorAll('#stats-list li').length`, func(n int) bool { return n >= 1 })

	// Alice removes Bob from his tile (two clicks: the confirmation).
	remove := `(() => { const b = document.querySelector('#tiles [data-key="p:` + bobID + `"] .mod-actions button.danger'); if (!b) return false; b.click(); return true; })()`
	waitFor(t, alice, "Bob's tile remove button", 30*time.Second, remove, func(b bool) bool { return b })
	alice.do(t, chromedp.Evaluate[chromedp.Void](remove))
	reason := waitFor(t, bob, "Bob on the after-meeting screen", 30*time.Second,
		`!document.getElementById('left').hidden ? document.getElementById('left-reason').textContent : ''`,
		func(s string) bool { return s != "" })
	t.Logf("removed page says: %q", reason)
	waitFor(t, carol, "Bob gone from Carol's meeting", 30*time.Second,
		`window.meshmeet.participants.some((p) => p.name === 'Bob') || window.meshmeet.tracks.some((t) => t.participant === '`+bobID+`')`,
		func(b bool) bool { return !b })
	notice := waitFor(t, carol, "Carol told who removed Bob", 30*time.Second, `document.getElementById('banner-text').textContent`,
		func(s string) bool { return strings.Contains(s, "removed") })
	t.Logf("Carol's notice: %q", notice)
	var last float64 = -1
	waitFor(t, carol, "Bob's media stops reaching Carol", 30*time.Second, bobBytes, func(n float64) bool {
		stable := n == last
		last = n
		time.Sleep(time.Second)
		return stable
	})
	time.Sleep(3 * time.Second)
	if n := waitFor(t, carol, "Bob's bytes", 5*time.Second, bobBytes, func(float64) bool { return true }); n != last {
		t.Fatalf("Carol still receives the removed page's media: %v bytes, then %v", last, n)
	}
	for _, b := range []*browser{alice, carol} {
		b.checkConsole(t)
	}
}
