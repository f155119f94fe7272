package wire

import (
	"strings"
	"testing"
)

// TestModerationMessages: the moderation messages a client sends carry
// exactly their fields, a well-formed participant ID and nothing of the
// server's.
func TestModerationMessages(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		ok       bool
	}{
		{"mute", `{"type":"mute-participant","participant":"abc_DEF-1"}`, true},
		{"stop camera", `{"type":"stop-camera","participant":"abc"}`, true},
		{"remove", `{"type":"remove-participant","participant":"abc"}`, true},
		{"admit", `{"type":"admit","participant":"abc"}`, true},
		{"deny", `{"type":"deny","participant":"abc"}`, true},
		{"end", `{"type":"end-meeting"}`, true},
		{"lobby on", `{"type":"set-lobby","lobby":true}`, true},
		{"lobby off", `{"type":"set-lobby","lobby":false}`, true},
		{"speaker stats", `{"type":"speaker-stats"}`, true},
		{"mute without participant", `{"type":"mute-participant"}`, false},
		{"mute bad participant", `{"type":"mute-participant","participant":"a b"}`, false},
		{"mute long participant", `{"type":"mute-participant","participant":"` + strings.Repeat("a", MaxIDBytes+1) + `"}`, false},
		{"end with participant", `{"type":"end-meeting","participant":"abc"}`, false},
		{"lobby without flag", `{"type":"set-lobby"}`, false},
		{"lobby not bool", `{"type":"set-lobby","lobby":"yes"}`, false},
		{"spoofed actor", `{"type":"remove-participant","participant":"abc","by":"def"}`, false},
		{"spoofed action", `{"type":"mute-participant","participant":"abc","action":"remove"}`, false},
		{"stats from a client", `{"type":"speaker-stats","stats":[]}`, false},
		{"participant on chat", `{"type":"chat","text":"hi","participant":"abc"}`, false},
		{"lobby on ping", `{"type":"ping","lobby":true}`, false},
		{"moderator claimed in join", `{"type":"join","version":1,"room":"r","moderator":true}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.in))
			if err == nil {
				err = m.Validate()
			}
			if (err == nil) != tt.ok {
				t.Fatalf("%s: err = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}
