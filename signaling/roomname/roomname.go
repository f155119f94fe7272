// Package roomname makes room names that are hard to guess and easy to say
// aloud, and warns about names that are easy to guess.
//
// A generated name is Adjective Noun Verb Adjective Noun in CamelCase, e.g.
// "BraveOttersChaseSilverComets", each word drawn with crypto/rand. Count
// returns the number of distinct names (at least 10^12).
//
// The guessable-name rule, mirrored by the web client: lower-case the name
// and keep letters and digits only; it is guessable when
//
//  1. fewer than MinLength characters remain, or
//  2. without digits it is a common meeting name (Words().Common), or
//  3. its letters split into at most two known words (adjectives, nouns,
//     verbs, common names) with only digits left over.
package roomname

import (
	"crypto/rand"
	"math/big"
	"slices"
	"strings"
	"sync"
)

// MinLength is the shortest normalized name that is not guessable on length
// alone.
const MinLength = 10

// Lists are the word lists, also served to the web client as JSON.
type Lists struct {
	Adjectives []string `json:"adjectives"`
	Nouns      []string `json:"nouns"`
	Verbs      []string `json:"verbs"`
	Common     []string `json:"common"`
}

var words = sync.OnceValue(func() *Lists {
	return &Lists{
		Adjectives: split(adjectiveList),
		Nouns:      split(nounList),
		Verbs:      split(verbList),
		Common:     split(commonList),
	}
})

// dictionary is every known word, for the split rule.
var dictionary = sync.OnceValue(func() map[string]bool {
	w := words()
	d := map[string]bool{}
	for _, l := range [][]string{w.Adjectives, w.Nouns, w.Verbs, w.Common} {
		for _, s := range l {
			d[s] = true
			// Singular forms of plural nouns are words too.
			d[strings.TrimSuffix(s, "s")] = true
		}
	}
	delete(d, "")
	return d
})

// split returns the sorted, de-duplicated words of a list.
func split(list string) []string {
	f := strings.Fields(list)
	slices.Sort(f)
	return slices.Compact(f)
}

// Words returns the word lists. The caller must not modify them.
func Words() *Lists { return words() }

// Count returns the number of distinct names New can return.
func Count() *big.Int {
	w := words()
	a := big.NewInt(int64(len(w.Adjectives)))
	n := big.NewInt(int64(len(w.Nouns)))
	v := big.NewInt(int64(len(w.Verbs)))
	c := new(big.Int).Mul(a, n)
	c.Mul(c, v)
	c.Mul(c, a)
	return c.Mul(c, n)
}

// New returns a random room name.
func New() string {
	w := words()
	var b strings.Builder
	for _, l := range [][]string{w.Adjectives, w.Nouns, w.Verbs, w.Adjectives, w.Nouns} {
		word := l[randIntn(len(l))]
		b.WriteString(strings.ToUpper(word[:1]))
		b.WriteString(word[1:])
	}
	return b.String()
}

func randIntn(n int) int {
	i, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic("roomname: crypto/rand failed: " + err.Error())
	}
	return int(i.Int64())
}

// Reason says why a name is guessable.
type Reason string

const (
	OK         Reason = ""
	TooShort   Reason = "short"
	Common     Reason = "common"
	Dictionary Reason = "dictionary"
)

// Message explains a reason to a person.
func (r Reason) Message() string {
	switch r {
	case TooShort:
		return "This name is easy to guess: it is short. Anyone who guesses it can join."
	case Common:
		return "This name is easy to guess: it is a common meeting name. Anyone who guesses it can join."
	case Dictionary:
		return "This name is easy to guess: it is one or two common words. Anyone who guesses it can join."
	}
	return ""
}

// Check reports whether name is easy to guess, and why.
func Check(name string) Reason {
	var letters, all strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z':
			letters.WriteRune(r)
			all.WriteRune(r)
		case r >= '0' && r <= '9':
			all.WriteRune(r)
		case r > 127:
			// Other scripts count as letters but are not in the lists.
			letters.WriteRune(r)
			all.WriteRune(r)
		}
	}
	if len([]rune(all.String())) < MinLength {
		return TooShort
	}
	l := letters.String()
	if slices.Contains(words().Common, l) {
		return Common
	}
	if l == "" || splitsInto(l, 2) {
		return Dictionary
	}
	return OK
}

// splitsInto reports whether s is the concatenation of at most max known
// words.
func splitsInto(s string, max int) bool {
	d := dictionary()
	// best[i] = fewest words covering s[:i]; 0 means not coverable (i > 0).
	best := make([]int, len(s)+1)
	for i := 1; i <= len(s); i++ {
		for j := 0; j < i; j++ {
			if (j == 0 || best[j] > 0) && d[s[j:i]] {
				if n := best[j] + 1; best[i] == 0 || n < best[i] {
					best[i] = n
				}
			}
		}
	}
	return best[len(s)] > 0 && best[len(s)] <= max
}
