package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// TestBrowserPassword: a page sets the room's password in the security
// dialog; a second page opening the room without it is refused and lands
// on the pre-join screen saying only "wrong password, locked room or not
// allowed" (it never appears in the meeting); typing the password there
// admits it. A token given as ?jwt= leaves the address bar at once and,
// under --auth jwt, is what admits the page.
func TestBrowserPassword(t *testing.T) {
	if !inNamespace(t, "TestBrowserPassword") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)
	srv := startServer(t, bin)

	const pw = "zqx-browser-password"
	room := roomname.New()
	page := srv.URL + "/" + url.PathEscape(room)
	alice := newBrowser(t, chromium, "alice", true)
	bob := newBrowser(t, chromium, "bob", true)

	alice.navigate(t, page+"?prejoin=0#name=Alice")
	waitFor(t, alice, "Alice joined", 30*time.Second, `window.meshmeet.joined`, func(b bool) bool { return b })
	alice.do(t,
		chromedp.Evaluate[chromedp.Void](`document.getElementById('security-dialog').showModal()`),
		chromedp.SendKeys(chromedp.ID("room-new-password"), pw),
		chromedp.Click(chromedp.ID("set-password")))
	text := waitFor(t, alice, "the security dialog says the room has a password", 30*time.Second,
		`window.meshmeet.session.security.passwordSet === true ? document.getElementById('security-password-text').textContent : ''`,
		func(s string) bool { return s != "" })
	t.Logf("Alice's dialog: %q", text)
	alice.do(t, chromedp.Evaluate[chromedp.Void](`document.getElementById('security-dialog').close()`))

	// Without the password: refused, back on the pre-join screen.
	bob.navigate(t, page+"?prejoin=0#name=Bob")
	note := waitFor(t, bob, "the pre-join screen saying the join was refused", 30*time.Second,
		`(() => { const n = document.getElementById('password-note'); return !document.getElementById('prejoin').hidden && !n.hidden ? n.textContent : ''; })()`,
		func(s string) bool { return s != "" })
	t.Logf("refused page: %q", note)
	if strings.Contains(strings.ToLower(note), "exist") {
		t.Errorf("the refusal talks about existence: %q", note)
	}
	if n := waitFor(t, alice, "Alice's roster", 5*time.Second, `window.meshmeet.participants.length`, func(int) bool { return true }); n != 0 {
		t.Errorf("the refused page shows up in the meeting: %d participants", n)
	}

	// With it: admitted, and the two see each other.
	bob.do(t, chromedp.SendKeys(chromedp.ID("room-password"), pw), chromedp.Click(chromedp.ID("join")))
	waitFor(t, bob, "Bob joined with the password", 30*time.Second, `window.meshmeet.joined`, func(b bool) bool { return b })
	waitFor(t, alice, "Alice sees Bob", 30*time.Second, `window.meshmeet.participants.map((p) => p.name)`,
		func(names []string) bool { return len(names) == 1 && names[0] == "Bob" })
	if got := waitFor(t, bob, "Bob's address", 5*time.Second, `location.href`, func(string) bool { return true }); strings.Contains(got, pw) {
		t.Errorf("the password is in the address bar: %s", got)
	}

	// ?jwt= is removed from the address bar as the page loads (under
	// --auth none the token is ignored by the server).
	carol := newBrowser(t, chromium, "carol", false)
	carol.navigate(t, page+"?jwt=zqx.token.value")
	href := waitFor(t, carol, "the page loaded", 30*time.Second, `window.meshmeet && window.meshmeet.ready ? location.href : ''`,
		func(s string) bool { return s != "" })
	if strings.Contains(href, "jwt") || strings.Contains(href, "zqx.token") {
		t.Errorf("the token stays in the address bar: %s", href)
	}
	hist := waitFor(t, carol, "history length", 5*time.Second, `history.length`, func(int) bool { return true })
	t.Logf("Carol's address after load: %s (history %d)", href, hist)

	testBrowserToken(t, bin, chromium)
}

// testBrowserToken: under --auth jwt a page without a token is refused
// and one opened with ?jwt=<a token minted by meshmeet token> joins with
// it, under the token's display name, the token gone from its address.
func testBrowserToken(t *testing.T, bin, chromium string) {
	secret := filepath.Join(t.TempDir(), "jwt.secret")
	if err := os.WriteFile(secret, []byte("e2e-secret-e2e-secret-e2e-secret-e2e-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, bin, "--auth", "jwt", "--jwt-secret-file", secret)
	room := roomname.New()
	out, err := exec.Command(bin, "token", "--jwt-secret-file", secret, "--room", room, "--moderator", "--name", "Tokened Tina", "--ttl", "10m").Output()
	if err != nil {
		t.Fatalf("meshmeet token: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	page := srv.URL + "/" + url.PathEscape(room)

	dan := newBrowser(t, chromium, "dan", false)
	dan.navigate(t, page+"?prejoin=0#name=Dan")
	waitFor(t, dan, "a page without a token refused back to the pre-join screen", 30*time.Second,
		`(() => { const n = document.getElementById('password-note'); return !document.getElementById('prejoin').hidden && !n.hidden; })()`,
		func(b bool) bool { return b })

	tina := newBrowser(t, chromium, "tina", false)
	tina.navigate(t, page+"?prejoin=0&jwt="+url.QueryEscape(tok))
	waitFor(t, tina, "the tokened page joined", 30*time.Second, `window.meshmeet.joined`, func(b bool) bool { return b })
	href := waitFor(t, tina, "the address", 5*time.Second, `location.href`, func(string) bool { return true })
	if strings.Contains(href, "jwt") || strings.Contains(href, tok[:20]) {
		t.Errorf("the token stays in the address bar: %s", href)
	}
	// Dan, with the token in his tab now, sees Tina by her token's name.
	dan.navigate(t, page+"?prejoin=0&jwt="+url.QueryEscape(tok))
	waitFor(t, dan, "Dan joins with the token and sees Tina by her token's name", 30*time.Second,
		`window.meshmeet.joined ? window.meshmeet.participants.map((p) => p.name) : []`,
		func(names []string) bool { return len(names) == 1 && names[0] == "Tokened Tina" })
}
