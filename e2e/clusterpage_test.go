package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// clusterView is what the cluster page shows: its region boxes with the
// nodes in each, the relay links drawn in its SVG and listed in its table,
// its error line, and the page's own state.
type clusterView struct {
	Shown   bool                `json:"shown"`
	Error   string              `json:"error"`
	Regions map[string][]string `json:"regions"`
	Nodes   int                 `json:"nodes"`
	Lines   []string            `json:"lines"` // "from>to" of each SVG link
	Rows    int                 `json:"rows"`  // relay link table rows
	Rooms   int                 `json:"rooms"`
	Text    string              `json:"text"`
	Href    string              `json:"href"`
	Stored  bool                `json:"stored"` // a token in sessionStorage
}

const clusterViewExpr = `(() => {
  const regions = {};
  for (const r of document.querySelectorAll('.cl-region')) {
    regions[r.dataset.region] = [...r.querySelectorAll('.cl-node')].map((n) => n.dataset.node);
  }
  const err = document.getElementById('cl-error');
  return {
    shown: !document.getElementById('cl-view').hidden,
    error: err.hidden ? '' : err.textContent,
    regions,
    nodes: document.querySelectorAll('.cl-node').length,
    lines: [...document.querySelectorAll('#cl-graph .cl-link')].filter((g) => g.querySelector('line')).map((g) => g.dataset.from + '>' + g.dataset.to),
    rows: document.querySelectorAll('#cl-links tbody tr').length,
    rooms: window.meshmeetCluster ? window.meshmeetCluster.rooms : -2,
    text: document.body.innerText,
    href: location.href,
    stored: !!sessionStorage.getItem('meshmeet.adminToken'),
  };
})()`

// TestBrowserClusterPage runs a two-node cluster (node-eu, node-us) with
// one meeting spanning both (a browser participant on each node), and
// opens /cluster on node-eu in a third, headless Chromium. With a wrong
// token the page says so and shows no node; with the token `meshmeet
// cluster admin-token` prints, it shows node-eu and node-us each under its
// region and the relay link node-eu>node-us, the meeting only as a count
// (its name appears nowhere), and the token in no URL. A reload keeps the
// tab's token.
func TestBrowserClusterPage(t *testing.T) {
	if !inNamespace(t, "TestBrowserClusterPage") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)

	nodes, secretFile := startCluster(t, bin, regionNodes("eu", "us"))
	out, err := exec.Command(bin, "cluster", "admin-token", "--cluster-secret-file", secretFile).Output()
	if err != nil {
		t.Fatalf("meshmeet cluster admin-token: %v\n%s", err, out)
	}
	token := strings.TrimSpace(string(out))
	if len(token) < 20 || strings.ContainsAny(token, " \n") {
		t.Fatalf("meshmeet cluster admin-token printed %q", out)
	}

	room := roomname.New()
	names := []string{"Eve", "Uma"}
	for i, n := range nodes {
		p := newBrowser(t, chromium, strings.ToLower(names[i]), true)
		p.navigate(t, n.URL+"/"+url.PathEscape(room)+"?prejoin=0&probe=0#name="+names[i])
		waitFor(t, p, "joined", 60*time.Second, `!!(window.meshmeet && window.meshmeet.joined)`,
			func(j bool) bool { return j })
		defer p.checkConsole(t)
	}

	op := newBrowser(t, chromium, "operator", false)
	op.navigate(t, nodes[0].URL+"/cluster")
	submit := func(tok string) {
		op.do(t, chromedp.SendKeys(chromedp.ID("cl-token"), tok),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('cl-login').requestSubmit()`))
	}

	// A wrong token: a clear message, no node, nothing kept.
	submit("bm90LXRoZS1hZG1pbi10b2tlbi1hdC1hbGwtMDEyMzQ1")
	v := waitFor(t, op, "the wrong-token message", 30*time.Second, clusterViewExpr,
		func(v clusterView) bool { return v.Error != "" })
	if !strings.Contains(v.Error, "Wrong admin token") || v.Shown || v.Nodes != 0 || v.Stored {
		t.Errorf("wrong token: page shows %+v", v)
	}
	t.Logf("wrong token: %q", v.Error)

	// The right token: both nodes under their regions, the relay link.
	submit(token)
	v = waitFor(t, op, "both nodes under their regions and the relay link", 60*time.Second, clusterViewExpr,
		func(v clusterView) bool {
			return v.Shown && v.Error == "" && len(v.Regions) == 2 &&
				contains(v.Regions["eu"], "node-eu") && contains(v.Regions["us"], "node-us") &&
				len(v.Lines) == 1 && v.Lines[0] == "node-eu>node-us" && v.Rows == 1
		})
	t.Logf("cluster page: regions %v, links %v, live meetings %d", v.Regions, v.Lines, v.Rooms)
	shot(t, op, "meshmeet-clusterpage.png")
	if v.Nodes != 2 {
		t.Errorf("page shows %d nodes, want 2", v.Nodes)
	}
	if v.Rooms < 1 {
		t.Errorf("page counts %d live meetings, want at least 1", v.Rooms)
	}
	if strings.Contains(v.Text, room) {
		t.Errorf("the cluster page shows the room name %q", room)
	}
	if strings.Contains(v.Href, token) || strings.Contains(v.Href, url.QueryEscape(token)) {
		t.Errorf("the token is in the page URL %s", v.Href)
	}

	// A reload keeps the token of this tab, and the page polls again.
	op.navigate(t, nodes[0].URL+"/cluster")
	waitFor(t, op, "the page again after a reload", 30*time.Second, clusterViewExpr,
		func(v clusterView) bool { return v.Shown && v.Nodes == 2 && len(v.Lines) == 1 })

	// The operator page's only console complaint may be the refused
	// request of the wrong token.
	op.mu.Lock()
	for _, p := range op.problems {
		if !strings.Contains(p, "401") {
			t.Errorf("operator console: %s", p)
		}
	}
	op.mu.Unlock()
}
