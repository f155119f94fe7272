// Region probes (issue 12): while the pre-join screen shows, the client
// times a round trip to one node of each region of the cluster and sends
// the results with its join, so that signaling places it on a bridge of
// the nearest region. The node the page came from lists the regions and
// their probe URLs (GET /regions, built from gossip); each probe is a
// constant, cacheable-but-revalidated answer that allows any origin and
// carries no credentials (signaling/probe.go).

const MAX_REGIONS = 16;
const MAX_REGION_BYTES = 64;
const MAX_URL = 256;
const MAX_MS = 60_000;
// Each probe is timed this often; the fastest counts (the first one also
// pays for DNS, TCP and TLS).
const TRIES = 3;
// The whole measurement gives up after this: a region that has not
// answered by then is left out, and the join goes ahead.
const DEADLINE_MS = 2500;

/** Region names as the server accepts them: 1..64 printable ASCII bytes. */
function validRegion(r) {
  return typeof r === 'string' && r.length > 0 && r.length <= MAX_REGION_BYTES && /^[\x21-\x7e]+$/.test(r);
}

/** An http(s) probe URL, https only from an https page. */
function validProbe(u) {
  if (typeof u !== 'string' || u.length > MAX_URL) return false;
  let p;
  try {
    p = new URL(u);
  } catch {
    return false;
  }
  if (p.protocol !== 'https:' && p.protocol !== 'http:') return false;
  if (location.protocol === 'https:' && p.protocol !== 'https:') return false;
  return !p.username && !p.password && !p.search && !p.hash;
}

async function timeProbe(url) {
  let best = null;
  for (let i = 0; i < TRIES; i++) {
    const t0 = performance.now();
    try {
      const r = await fetch(url, { cache: 'no-store', mode: 'cors', credentials: 'omit' });
      await r.arrayBuffer();
      if (!r.ok) return best;
    } catch {
      return best;
    }
    const d = performance.now() - t0;
    if (best === null || d < best) best = d;
  }
  return best === null ? null : Math.min(MAX_MS, Math.max(0, Math.round(best)));
}

/**
 * Measures the round trip to each region the page's node lists. Resolves
 * (never rejects) with [{region, ms}], at most 16, within the deadline;
 * an empty list when the node lists no regions or none answered.
 */
export function measureRegions({ deadlineMs = DEADLINE_MS } = {}) {
  const results = [];
  const work = (async () => {
    const resp = await fetch('/regions', { cache: 'no-store' });
    if (!resp.ok) return;
    const body = await resp.json();
    const list = Array.isArray(body && body.regions) ? body.regions.slice(0, MAX_REGIONS) : [];
    const seen = new Set();
    await Promise.all(
      list.map(async (r) => {
        if (!r || !validRegion(r.region) || seen.has(r.region) || !validProbe(r.probe)) return;
        seen.add(r.region);
        const ms = await timeProbe(r.probe);
        if (ms !== null && results.length < MAX_REGIONS) results.push({ region: r.region, ms });
      }),
    );
  })().catch((e) => console.debug('meshmeet: region probes', e));
  const deadline = new Promise((resolve) => setTimeout(resolve, deadlineMs));
  return Promise.race([work, deadline]).then(() => results.slice());
}
