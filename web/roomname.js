// Room names: the generator and the guessable-name check.
//
// Both mirror package signaling/roomname, from the same word lists, which
// the server hands out at GET /api/words:
// {"adjectives":[...],"nouns":[...],"verbs":[...],"common":[...]}.
//
// A generated name is Adjective Noun Verb Adjective Noun in CamelCase, for
// example "BraveOttersChaseSilverComets", each word drawn uniformly with
// crypto.getRandomValues.

/** Fetches the word lists from the server that served the page. */
export async function loadWords() {
  const res = await fetch('/api/words', { credentials: 'same-origin' });
  if (!res.ok) throw new Error(`GET /api/words: ${res.status}`);
  const w = await res.json();
  for (const k of ['adjectives', 'nouns', 'verbs', 'common']) {
    if (!Array.isArray(w[k])) throw new Error(`/api/words: no list "${k}"`);
  }
  return w;
}

/**
 * Returns a uniform random integer in [0, n) from crypto.getRandomValues,
 * by rejection sampling so that no index is more likely than another.
 */
export function randomIndex(n) {
  if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) {
    throw new RangeError(`randomIndex: bad bound ${n}`);
  }
  // The largest multiple of n that fits in 2^32: values at or above it
  // would favour the low indexes, so draw again.
  const limit = Math.floor(0x100000000 / n) * n;
  const buf = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buf);
    if (buf[0] < limit) return buf[0] % n;
  }
}

function pick(list) {
  return list[randomIndex(list.length)];
}

function title(word) {
  return word.charAt(0).toUpperCase() + word.slice(1).toLowerCase();
}

/** Returns a new random room name, such as "BraveOttersChaseSilverComets". */
export function generate(words) {
  const { adjectives: a, nouns: n, verbs: v } = words;
  return [pick(a), pick(n), pick(v), pick(a), pick(n)].map(title).join('');
}

/**
 * Lower-cases name and keeps its letters and digits: a-z, 0-9 and every
 * character beyond ASCII (other scripts count as letters, though no list
 * holds them), as roomname.Check does.
 */
export function normalise(name) {
  let out = '';
  for (const c of name.toLowerCase()) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c.codePointAt(0) > 127) out += c;
  }
  return out;
}

const dictCache = new WeakMap();

function dictionary(words) {
  let d = dictCache.get(words);
  if (!d) {
    const set = new Set();
    for (const k of ['adjectives', 'nouns', 'verbs', 'common']) {
      for (const w of words[k] || []) {
        set.add(w);
        // Singular forms of plural nouns are words too.
        set.add(w.endsWith('s') ? w.slice(0, -1) : w);
      }
    }
    set.delete('');
    d = { set, common: new Set(words.common || []) };
    dictCache.set(words, d);
  }
  return d;
}

/** Reports whether s splits into at most max dictionary words. */
function splitsInto(s, max, dict) {
  const chars = [...s];
  // best[i] = fewest words covering chars[:i]; 0 means not coverable (i > 0).
  const best = new Array(chars.length + 1).fill(0);
  for (let i = 1; i <= chars.length; i++) {
    for (let j = 0; j < i; j++) {
      if ((j === 0 || best[j] > 0) && dict.set.has(chars.slice(j, i).join(''))) {
        const n = best[j] + 1;
        if (best[i] === 0 || n < best[i]) best[i] = n;
      }
    }
  }
  const b = best[chars.length];
  return b > 0 && b <= max;
}

/** The shortest normalised name that is not guessable on length alone. */
export const MIN_LENGTH = 10;

/** Why a name is easy to guess, as messages for a person (roomname.Reason). */
export const MESSAGES = {
  short: 'This name is easy to guess: it is short. Anyone who guesses it can join.',
  common: 'This name is easy to guess: it is a common meeting name. Anyone who guesses it can join.',
  dictionary: 'This name is easy to guess: it is one or two common words. Anyone who guesses it can join.',
};

/**
 * Reports why name is easy to guess: 'short', 'common' or 'dictionary', or
 * '' when it is not. After normalise, a name is guessable when fewer than
 * 10 characters remain, when its letters are a common meeting name, or
 * when its letters split into at most 2 known words (with only digits left
 * over). This only warns; any valid name may be used. Without the word
 * lists only the length rule applies.
 */
export function check(name, words) {
  const all = normalise(name);
  if ([...all].length < MIN_LENGTH) return 'short';
  if (!words) return '';
  const dict = dictionary(words);
  const letters = all.replace(/[0-9]/g, '');
  if (dict.common.has(letters)) return 'common';
  if (letters === '' || splitsInto(letters, 2, dict)) return 'dictionary';
  return '';
}

/** Reports whether name is easy to guess (see check). */
export function isGuessable(name, words) {
  return check(name, words) !== '';
}

/** First path segments the server keeps for itself: /<name> is not a room. */
export const RESERVED = new Set(['static', 'ws', 'api', 'admin', 'healthz', 'readyz', 'favicon.ico', 'robots.txt']);

/**
 * Checks a room name as the server does (wire.ValidRoomName), and that
 * /<name> can open it, and returns a message for a person, or '' when the
 * name is valid.
 */
export function roomNameProblem(name) {
  const runes = [...name];
  if (runes.length === 0) return 'Enter a room name.';
  if (runes.length > 128) return 'A room name has at most 128 characters.';
  if (name.trim() !== name) return 'A room name cannot start or end with a space.';
  if (/[/?#\\]/.test(name)) return 'A room name cannot contain / ? # or \\.';
  if (RESERVED.has(name)) return `"${name}" is reserved for the server: choose another name.`;
  if (!isPrintable(name)) {
    return 'A room name can only contain letters, digits, punctuation, symbols and spaces.';
  }
  return '';
}

/**
 * Reports whether s has only characters Go's unicode.IsPrint accepts:
 * letters, marks, numbers, punctuation, symbols and the ASCII space.
 */
export function isPrintable(s) {
  return !/[^\p{L}\p{M}\p{N}\p{P}\p{S} ]/u.test(s);
}
