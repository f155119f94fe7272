package signaling

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

func TestDecodeCascade(t *testing.T) {
	long := strings.Repeat("x", wire.MaxIDBytes+1)
	for _, tt := range []struct {
		name, in string
		ok       bool
	}{
		{"roster", `{"v":1,"t":"roster","g":3,"l":true,"p":[{"id":"abc","name":"Ann","muted":{"audio":true,"video":false}}]}`, true},
		{"empty roster", `{"v":1,"t":"roster","g":3,"l":true}`, true},
		{"upsert", `{"v":1,"t":"upsert","p":[{"id":"abc","name":"","muted":{"audio":false,"video":false}}]}`, true},
		{"left", `{"v":1,"t":"left","id":"abc"}`, true},
		{"chat", `{"v":1,"t":"chat","c":[{"id":"c1","participant":"abc","name":"Ann","text":"hi","ts":1}]}`, true},
		{"other version", `{"v":2,"t":"left","id":"abc"}`, false},
		{"unknown type", `{"v":1,"t":"kick","id":"abc"}`, false},
		{"unknown field", `{"v":1,"t":"left","id":"abc","room":"x"}`, false},
		{"trailing data", `{"v":1,"t":"left","id":"abc"}{}`, false},
		{"bad id", `{"v":1,"t":"left","id":"a b"}`, false},
		{"long id", `{"v":1,"t":"left","id":"` + long + `"}`, false},
		{"empty upsert", `{"v":1,"t":"upsert"}`, false},
		{"gen on upsert", `{"v":1,"t":"upsert","g":1,"p":[{"id":"abc","name":"","muted":{"audio":false,"video":false}}]}`, false},
		{"control char name", `{"v":1,"t":"upsert","p":[{"id":"abc","name":"a\u0001","muted":{"audio":false,"video":false}}]}`, false},
		{"empty chat text", `{"v":1,"t":"chat","c":[{"id":"c1","participant":"abc","name":"Ann","text":"","ts":1}]}`, false},
		{"chat too long", `{"v":1,"t":"chat","c":[{"id":"c1","participant":"abc","name":"Ann","text":"` + strings.Repeat("é", wire.MaxChatRunes+1) + `","ts":1}]}`, false},
		{"chat on left", `{"v":1,"t":"left","id":"abc","c":[{"id":"c1","participant":"abc","name":"Ann","text":"x","ts":1}]}`, false},
		{"not json", `nope`, false},
		{"mod remove", `{"v":1,"t":"mod","a":"remove","by":"abc","id":"def"}`, true},
		{"mod end", `{"v":1,"t":"mod","a":"end","by":"abc"}`, true},
		{"mod lobby-on", `{"v":1,"t":"mod","a":"lobby-on","by":"abc"}`, true},
		{"mod unknown action", `{"v":1,"t":"mod","a":"ban","by":"abc","id":"def"}`, false},
		{"mod without actor", `{"v":1,"t":"mod","a":"mute","id":"def"}`, false},
		{"mod remove without target", `{"v":1,"t":"mod","a":"remove","by":"abc"}`, false},
		{"mod end with target", `{"v":1,"t":"mod","a":"end","by":"abc","id":"def"}`, false},
		{"mod bad target", `{"v":1,"t":"mod","a":"mute","by":"abc","id":"d e"}`, false},
		{"mod with participants", `{"v":1,"t":"mod","a":"mute","by":"abc","id":"def","p":[{"id":"x","name":"","muted":{"audio":false,"video":false}}]}`, false},
		{"actor on left", `{"v":1,"t":"left","id":"abc","by":"def"}`, false},
		{"action on chat", `{"v":1,"t":"chat","a":"end","c":[{"id":"c1","participant":"abc","name":"Ann","text":"x","ts":1}]}`, false},
		{"lobby", `{"v":1,"t":"lobby","p":[{"id":"abc","name":"Wanda","muted":{"audio":false,"video":false}}]}`, true},
		{"empty lobby", `{"v":1,"t":"lobby"}`, true},
		{"empty lobby list", `{"v":1,"t":"lobby","p":[]}`, true},
		{"lobby with id", `{"v":1,"t":"lobby","id":"abc"}`, false},
		{"lobby bad name", `{"v":1,"t":"lobby","p":[{"id":"abc","name":"a\u0001","muted":{"audio":false,"video":false}}]}`, false},
		{"lobby too long", `{"v":1,"t":"lobby","p":[` + strings.TrimSuffix(strings.Repeat(`{"id":"abc","name":"","muted":{"audio":false,"video":false}},`, 101), ",") + `]}`, false},
		{"not utf-8", "{\"v\":1,\"t\":\"left\",\"id\":\"\xff\"}", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := decodeCascade([]byte(tt.in))
			if tt.ok != (err == nil) {
				t.Fatalf("decode: %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, errBadCascade) {
					t.Fatalf("error %v does not wrap errBadCascade", err)
				}
				if strings.Contains(err.Error(), "a b") || strings.Contains(err.Error(), "room") {
					t.Fatalf("error quotes input: %v", err)
				}
				return
			}
			data, err := encodeCascade(m)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := decodeCascade(data)
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip: %v\n%+v\n%+v", err, m, m2)
			}
		})
	}
	big := `{"v":1,"t":"left","id":"abc","x":"` + strings.Repeat("a", 70000) + `"}`
	if _, err := decodeCascade([]byte(big)); err == nil {
		t.Fatal("oversized message accepted")
	}
}

// FuzzDecodeCascade: the decoder never panics, and what it accepts
// encodes and decodes to the same message.
func FuzzDecodeCascade(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"t":"roster","g":3,"l":true,"p":[{"id":"abc","name":"Ann","muted":{"audio":true,"video":false}}]}`,
		`{"v":1,"t":"upsert","p":[{"id":"abc","name":"","muted":{"audio":false,"video":false}}]}`,
		`{"v":1,"t":"left","id":"abc"}`,
		`{"v":1,"t":"chat","c":[{"id":"c1","participant":"abc","name":"Ann","text":"hi","ts":1}]}`,
		`{"v":1,"t":"mod","a":"remove","by":"abc","id":"def"}`,
		`{"v":1,"t":"mod","a":"end","by":"abc"}`,
		`{"v":1,"t":"lobby","p":[{"id":"abc","name":"Wanda","muted":{"audio":false,"video":false}}]}`,
		`{"v":1,"t":"lobby","p":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeCascade(data)
		if err != nil {
			return
		}
		enc, err := encodeCascade(m)
		if err != nil {
			t.Fatalf("accepted message does not encode: %v", err)
		}
		m2, err := decodeCascade(enc)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
