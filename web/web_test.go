package web

import (
	"encoding/json"
	"io"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshmeet/meshmeet/signaling/roomname"
)

func TestIndexAtRoot(t *testing.T) {
	b, err := fs.ReadFile(Assets, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "<!doctype html>") {
		t.Errorf("index.html does not start with <!doctype html>")
	}
}

var (
	attrURL  = regexp.MustCompile(`(?i)\b(?:src|href)\s*=\s*"([^"]*)"`)
	jsImport = regexp.MustCompile(`(?m)^\s*import\b[^'"]*['"]([^'"]+)['"]`)
	// Anything that names a host: a URL with a scheme the browser would
	// fetch or connect to, a protocol-relative URL, or an ICE server.
	externalRef = regexp.MustCompile(`(?i)\b(?:(?:https?|wss?)://[a-z0-9\[]|(?:stuns?|turns?):[a-z0-9\[])|["'(]//[a-z0-9]`)
)

// Every reference in index.html is a file of Assets under /static/, the
// page root, or a data: URL.
func TestIndexReferencesExist(t *testing.T) {
	b, _ := fs.ReadFile(Assets, "index.html")
	refs := attrURL.FindAllStringSubmatch(string(b), -1)
	if len(refs) == 0 {
		t.Fatal("index.html references nothing")
	}
	for _, m := range refs {
		ref := m[1]
		switch {
		case ref == "/", strings.HasPrefix(ref, "data:"):
		case strings.HasPrefix(ref, "/static/"):
			name := strings.TrimPrefix(ref, "/static/")
			if _, err := fs.Stat(Assets, name); err != nil {
				t.Errorf("index.html references %s: %v", ref, err)
			}
		default:
			t.Errorf("index.html references %q: not under /static/", ref)
		}
	}
}

// Module imports are relative and resolve to files of Assets.
func TestImportsResolve(t *testing.T) {
	files, _ := fs.Glob(Assets, "*.js")
	if len(files) < 2 {
		t.Fatalf("only %d modules", len(files))
	}
	for _, f := range files {
		b, _ := fs.ReadFile(Assets, f)
		for _, m := range jsImport.FindAllStringSubmatch(string(b), -1) {
			ref := m[1]
			if !strings.HasPrefix(ref, "./") {
				t.Errorf("%s imports %q: only relative imports of our own modules are allowed", f, ref)
				continue
			}
			if _, err := fs.Stat(Assets, strings.TrimPrefix(ref, "./")); err != nil {
				t.Errorf("%s imports %q: %v", f, ref, err)
			}
		}
	}
}

// No asset names another host: no CDN, no web font, no STUN or TURN
// server. The page talks only to the server that served it.
func TestNoExternalReferences(t *testing.T) {
	err := fs.WalkDir(Assets, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Assets, path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if loc := externalRef.FindStringIndex(line); loc != nil {
				t.Errorf("%s:%d names another host: %s", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// node, where installed, checks the modules' syntax and runs the client's
// guessable-name check against roomname.Check.
func TestModulesWithNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping: node is not installed (the browser test in e2e covers the modules too)")
	}
	dir := t.TempDir()
	files, _ := fs.Glob(Assets, "*.js")
	for _, f := range files {
		b, _ := fs.ReadFile(Assets, f)
		// .mjs: node treats the file as an ES module without a package.json.
		p := filepath.Join(dir, strings.TrimSuffix(f, ".js")+".mjs")
		src := strings.ReplaceAll(string(b), ".js'", ".mjs'")
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(node, "--check", p).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}

	names := []string{
		"", "test", "Test123", "daily-standup", "Daily Standup 2024", "meeting2024",
		"weeklysync", "BlueOtters2024", "blue otter 12345", "BraveOttersChaseSilverComets",
		"qwertyuiopasdf", "ÜberGeheimesTreffen", "1234567890", "CalmBadgersZz99",
		"teamretrospective", "plannings", "a-b-c-d-e-f-g-h-i-j", "ПланёркаКоманды",
	}
	for range 50 {
		names = append(names, roomname.New())
	}
	words, _ := json.Marshal(roomname.Words())
	in, _ := json.Marshal(names)
	script := `import * as r from './roomname.mjs';
const words = ` + string(words) + `;
const names = ` + string(in) + `;
const gen = [];
for (let i = 0; i < 50; i++) gen.push(r.generate(words));
console.log(JSON.stringify({ checks: names.map((n) => r.check(n, words)), gen }));
`
	p := filepath.Join(dir, "check.mjs")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(node, p).Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var res struct {
		Checks []string `json:"checks"`
		Gen    []string `json:"gen"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	for i, n := range names {
		if want := string(roomname.Check(n)); res.Checks[i] != want {
			t.Errorf("check(%q): client %q, roomname.Check %q", n, res.Checks[i], want)
		}
	}
	camel := regexp.MustCompile(`^(?:[A-Z][a-z]+){5}$`)
	seen := map[string]bool{}
	for _, g := range res.Gen {
		if !camel.MatchString(g) {
			t.Errorf("generated %q: not five CamelCase words", g)
		}
		if r := roomname.Check(g); r != roomname.OK {
			t.Errorf("generated %q is guessable: %s", g, r)
		}
		seen[g] = true
	}
	if len(seen) < len(res.Gen)-1 {
		t.Errorf("50 generated names hold only %d distinct ones", len(seen))
	}
}

// The quality meter, fed fake getStats reports, measures loss over each
// interval and RTT from the selected candidate pair and the remote reports.
func TestQualityWithNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping: node is not installed")
	}
	dir := t.TempDir()
	b, _ := fs.ReadFile(Assets, "quality.js")
	if err := os.WriteFile(filepath.Join(dir, "quality.mjs"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `import { classify, Meter } from './quality.mjs';
const out = {};
out.classify = [classify(null, null), classify(0, 0.05), classify(0.01, 0.3), classify(0.05, 0.1), classify(0.2, 0.1), classify(0, 0.8)];
// A fake PeerConnection whose report is whatever stats holds.
function pc(stats) { return { connectionState: 'connected', getStats: async () => new Map(stats().map((s) => [s.id, s])) }; }
let recv = 1000, lost = 0, rtt = 0.04;
const sub = pc(() => [
  { id: 'in1', type: 'inbound-rtp', packetsReceived: recv, packetsLost: lost },
  { id: 't', type: 'transport', selectedCandidatePairId: 'cp' },
  { id: 'cp', type: 'candidate-pair', currentRoundTripTime: rtt },
  { id: 'cp2', type: 'candidate-pair', currentRoundTripTime: 9 },
]);
const m = new Meter();
out.first = await m.sample(null, sub);
recv += 1000; lost += 0; out.clean = await m.sample(null, sub);
recv += 900; lost += 100; out.lossy = await m.sample(null, sub);
recv += 1000; rtt = 0.4; out.slow = await m.sample(null, sub);
const pub = pc(() => [{ id: 'r', type: 'remote-inbound-rtp', fractionLost: 0.3, roundTripTime: 0.02 }]);
out.remote = await m.sample(pub, null);
console.log(JSON.stringify(out));
`
	p := filepath.Join(dir, "q.mjs")
	if err := os.WriteFile(p, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := exec.Command(node, p).Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, raw)
	}
	type reading struct {
		Level string   `json:"level"`
		Loss  *float64 `json:"loss"`
		RTT   *float64 `json:"rtt"`
	}
	var out struct {
		Classify                          []string
		First, Clean, Lossy, Slow, Remote reading
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("node printed %q: %v", raw, err)
	}
	if want := []string{"unknown", "good", "fair", "fair", "poor", "poor"}; !slices.Equal(out.Classify, want) {
		t.Errorf("classify: got %v, want %v", out.Classify, want)
	}
	check := func(name string, r reading, level string, loss, rtt float64) {
		t.Helper()
		if r.Level != level || r.Loss == nil || math.Abs(*r.Loss-loss) > 1e-9 || r.RTT == nil || math.Abs(*r.RTT-rtt) > 1e-9 {
			t.Errorf("%s: got %s loss %v rtt %v, want %s loss %v rtt %v", name, r.Level, deref(r.Loss), deref(r.RTT), level, loss, rtt)
		}
	}
	check("first sample", out.First, "good", 0, 0.04)
	check("no loss", out.Clean, "good", 0, 0.04)
	check("10 % loss in the interval", out.Lossy, "poor", 0.1, 0.04)
	check("400 ms RTT", out.Slow, "fair", 0, 0.4)
	check("remote report", out.Remote, "poor", 0.3, 0.02)
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// The security headers forbid what the client never needs: another origin,
// inline script, plugins, <base>, framing.
func TestSecurityHeaders(t *testing.T) {
	h := http.Header{}
	SetSecurityHeaders(h)
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
		t.Errorf("Content-Security-Policy %q allows too much", csp)
	}
	for k, v := range map[string]string{
		"Permissions-Policy":     "camera=(self), microphone=(self), display-capture=(self)",
		"Referrer-Policy":        "no-referrer",
		"X-Content-Type-Options": "nosniff",
	} {
		if h.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, h.Get(k), v)
		}
	}
}

// The cluster page is served with the web client's security headers; it
// and every file it references (its script and stylesheet, served under
// /static/) exist and name no other host; the script reads the status only
// from this origin's /admin/status, sends the token as a header, keeps it
// in sessionStorage and never puts it in a URL.
func TestClusterPageServed(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster", ServeClusterPage)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(Assets)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(p string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: HTTP %d", p, resp.StatusCode)
		}
		return resp, string(b)
	}
	resp, page := get("/cluster")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("/cluster Content-Type %q", ct)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); csp != ContentSecurityPolicy {
		t.Errorf("/cluster Content-Security-Policy %q, want %q", csp, ContentSecurityPolicy)
	}
	if !strings.HasPrefix(page, "<!doctype html>") || !strings.Contains(page, `type="password"`) {
		t.Errorf("/cluster is not the cluster page with a password field:\n%s", page)
	}
	files := map[string]string{"/cluster": page}
	refs := attrURL.FindAllStringSubmatch(page, -1)
	for _, m := range refs {
		ref := m[1]
		switch {
		case strings.HasPrefix(ref, "data:"):
		case strings.HasPrefix(ref, "/static/"):
			_, body := get(ref)
			files[ref] = body
		default:
			t.Errorf("cluster.html references %q: not under /static/", ref)
		}
	}
	for _, want := range []string{"/static/cluster.js", "/static/cluster.css"} {
		if _, ok := files[want]; !ok {
			t.Errorf("cluster.html does not reference %s", want)
		}
	}
	for name, body := range files {
		for i, line := range strings.Split(body, "\n") {
			if externalRef.MatchString(line) {
				t.Errorf("%s:%d names another host: %s", name, i+1, strings.TrimSpace(line))
			}
		}
	}
	js := files["/static/cluster.js"]
	for _, want := range []string{"fetch('/admin/status'", "Authorization: 'Bearer ' + token", "sessionStorage"} {
		if !strings.Contains(js, want) {
			t.Errorf("cluster.js lacks %q", want)
		}
	}
	for _, bad := range []string{"localStorage", "location.search", "location.hash", "?token", "pushState", "replaceState"} {
		if strings.Contains(js, bad) {
			t.Errorf("cluster.js uses %q: the token must stay out of URLs and persistent storage", bad)
		}
	}
}
