package web

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// managedKeysScript runs e2ee-keys.js in node with N pages whose blobs a
// router delivers (in order, per pair, as the server does): the pages join
// one after another, then one leaves. It prints what each page's worker
// was given and what each page sent when.
const managedKeysScript = `import { ManagedKeys, ratchet, b64 } from './e2ee-keys.mjs';
const N = Number(process.argv[2]);
class FakeWorker {
  constructor() { this.own = null; this.peers = {}; }
  postMessage(m) {
    if (m.type === 'own-key') this.own = { index: m.index, raw: b64(m.raw) };
    if (m.type === 'peer-key') (this.peers[m.participant] ||= {})[m.index] = b64(m.raw);
    if (m.type === 'forget') delete this.peers[m.participant];
  }
}
const pages = new Map();
const sends = {};
const t0 = Date.now();
function page(id) {
  const w = new FakeWorker();
  const k = new ManagedKeys(w);
  k.send = (to, blob) => {
    (sends[id] ||= []).push(Date.now() - t0);
    setTimeout(() => { const p = pages.get(to); if (p) p.k.receive(id, blob); }, 1);
  };
  pages.set(id, { k, w });
  return k;
}
const quiet = async () => {
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 50));
    let busy = false;
    for (const { k } of pages.values()) busy = busy || k._out.length > 0;
    if (!busy) { await new Promise((r) => setTimeout(r, 200)); return; }
  }
};
const ids = [];
for (let i = 0; i < N; i++) {
  const id = 'p' + i;
  const k = page(id);
  for (const o of ids) pages.get(o).k.joined(id);
  await k.welcome(id, [...ids]);
  ids.push(id);
}
await quiet();
async function check(label) {
  const bad = [];
  for (const [a, pa] of pages) {
    for (const [b, pb] of pages) {
      if (a === b) continue;
      const known = pb.w.peers[a] || {};
      const own = pa.w.own;
      // b must read a's current key: have it, or ratchet to it.
      let ok = false;
      for (const [i, raw] of Object.entries(known)) {
        let r = Uint8Array.from(atob(raw.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)).buffer;
        for (let j = Number(i); j !== own.index; j = (j + 1) & 0xff) r = await ratchet(r);
        if (b64(r) === own.raw) ok = true;
      }
      if (!ok) bad.push(label + ': ' + b + ' cannot read ' + a);
      if (pa.k.state().sas[b] !== pb.k.state().sas[a] || !pa.k.state().sas[b]) bad.push(label + ': emoji of ' + a + '/' + b + ' differ');
    }
  }
  return bad;
}
const bad = await check('after joins');
// The first page leaves: the others rotate; it must not get the new keys.
const gone = pages.get('p0');
pages.delete('p0');
for (const { k } of pages.values()) k.left('p0');
await quiet();
await new Promise((r) => setTimeout(r, 1500 + 100 * N));
bad.push(...(await check('after a leave')));
for (const [a, pa] of pages) {
  const known = gone.w.peers[a] || {};
  if (Object.values(known).includes(pa.w.own.raw)) bad.push('p0 got ' + a + "'s key after leaving");
}
console.log(JSON.stringify({ bad, sends, indexes: [...pages.values()].map((p) => p.w.own.index) }));
process.exit(0);
`

// TestManagedKeysWithNode runs the managed-key exchange (e2ee-keys.js) of
// several pages in node: after each join every page can read every other
// page's current key (given or ratcheted), both pages of a pair show the
// same emoji; after a leave the others rotate and the leaver gets none of
// the new keys; and no page sends key messages faster than the pace the
// server's message rate leaves room for.
func TestManagedKeysWithNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("skipping: node is not installed (e2e.TestBrowserE2EEManaged covers the exchange in Chromium)")
	}
	dir := t.TempDir()
	b, err := fs.ReadFile(Assets, "e2ee-keys.js")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "e2ee-keys.mjs"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "keys.mjs")
	if err := os.WriteFile(p, []byte(managedKeysScript), 0o644); err != nil {
		t.Fatal(err)
	}
	const n = 30
	out, err := exec.Command(node, p, "30").Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var res struct {
		Bad     []string         `json:"bad"`
		Sends   map[string][]int `json:"sends"`
		Indexes []int            `json:"indexes"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node printed %q: %v", out, err)
	}
	if len(res.Bad) > 0 {
		t.Errorf("%d problems, first: %s", len(res.Bad), strings.Join(res.Bad[:min(5, len(res.Bad))], "; "))
	}
	// The server allows 20 messages a second, bursts of 60: in any second
	// a page sends at most the burst of 20 and 10 more.
	worst := 0
	for id, ts := range res.Sends {
		for i := range ts {
			j := i
			for j < len(ts) && ts[j]-ts[i] < 1000 {
				j++
			}
			if j-i > worst {
				worst = j - i
			}
			if j-i > 31 {
				t.Errorf("%s sent %d key messages within a second", id, j-i)
				break
			}
		}
	}
	t.Logf("%d pages: at most %d key messages a second from one page; key indexes after %d joins and a leave: %v", n, worst, n-1, res.Indexes)
}
