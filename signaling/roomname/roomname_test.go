package roomname

import (
	"math/big"
	"regexp"
	"strings"
	"testing"
)

func TestCountAtLeastTrillion(t *testing.T) {
	c := Count()
	if c.Cmp(big.NewInt(1_000_000_000_000)) < 0 {
		t.Fatalf("Count() = %v, want at least 10^12", c)
	}
	t.Logf("%v distinct names", c)
}

func TestWordsWellFormed(t *testing.T) {
	w := Words()
	word := regexp.MustCompile(`^[a-z]{2,13}$`)
	for _, l := range [][]string{w.Adjectives, w.Nouns, w.Verbs, w.Common} {
		for _, s := range l {
			if !word.MatchString(s) {
				t.Errorf("word %q is not 2-13 lower-case letters", s)
			}
		}
	}
	if len(w.Adjectives) < 150 || len(w.Nouns) < 300 || len(w.Verbs) < 150 {
		t.Errorf("lists too short: %d adjectives, %d nouns, %d verbs", len(w.Adjectives), len(w.Nouns), len(w.Verbs))
	}
}

func TestNewIsRandomAndNotGuessable(t *testing.T) {
	camel := regexp.MustCompile(`^([A-Z][a-z]+){5}$`)
	seen := map[string]bool{}
	for range 1000 {
		n := New()
		if !camel.MatchString(n) {
			t.Fatalf("New() = %q, not five CamelCase words", n)
		}
		if r := Check(n); r != OK {
			t.Fatalf("Check(New()=%q) = %q, want OK", n, r)
		}
		seen[n] = true
	}
	if len(seen) < 999 {
		t.Fatalf("1000 names gave only %d distinct ones", len(seen))
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		want Reason
	}{
		{"test", TooShort},
		{"abc", TooShort},
		{"room 1", TooShort},
		{"x7Kq9", TooShort},
		{"meeting12345", Common},
		{"Conference", Common},
		{"ENGINEERING", Common},
		{"weekly-standup", Dictionary},
		{"TeamMeeting2024", Dictionary},
		{"purple otters", Dictionary},
		{"HappyOtters", Dictionary},
		{"1234567890", Dictionary},
		{"BraveOttersChaseSilverComets", OK},
		{"quarterly-xkcd-Zebrafish-flux", OK},
		{"k3jd8fh2kd9q", OK},
		{"Überraschungsparty", OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Check(tc.name); got != tc.want {
				t.Errorf("Check(%q) = %q, want %q", tc.name, got, tc.want)
			}
			if tc.want != OK && !strings.Contains(tc.want.Message(), "easy to guess") {
				t.Errorf("Message of %q does not warn", tc.want)
			}
		})
	}
}
