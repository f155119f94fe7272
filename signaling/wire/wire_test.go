package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestDecodeValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
		want string // substring of the error
	}{
		{"join", `{"type":"join","version":1,"room":"BraveOttersChaseSilverComets","name":"Ada"}`, true, ""},
		{"join resume", `{"type":"join","version":1,"room":"r","resume":{"participant":"abc","secret":"def"}}`, true, ""},
		{"offer", `{"type":"offer","pc":"pub","sdp":"v=0"}`, true, ""},
		{"candidate", `{"type":"candidate","pc":"sub","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}`, true, ""},
		{"end of candidates", `{"type":"candidate","pc":"pub","candidate":{"candidate":""}}`, true, ""},
		{"chat", `{"type":"chat","text":"hello"}`, true, ""},
		{"prefs", `{"type":"prefs","trackId":"t1","maxHeight":360}`, true, ""},
		{"prefs pause", `{"type":"prefs","trackId":"t1"}`, true, ""},
		{"prefs pin", `{"type":"prefs","trackId":"t1","maxHeight":360,"pin":true}`, true, ""},
		{"state", `{"type":"state","muted":{"audio":true,"video":false}}`, true, ""},
		{"ping", `{"type":"ping"}`, true, ""},

		{"not an object", `[1,2]`, false, "JSON object"},
		{"not json", `hello`, false, "bad message"},
		{"trailing", `{"type":"ping"}{"type":"ping"}`, false, "trailing"},
		{"duplicate key", `{"type":"chat","text":"a","text":"b"}`, false, "duplicate"},
		{"case variant key", `{"type":"chat","text":"a","Text":"b"}`, false, "unknown field"},
		{"case variant only", `{"TYPE":"ping"}`, false, "unknown field"},
		{"unknown field", `{"type":"ping","x":1}`, false, "unknown field"},
		{"unknown nested", `{"type":"join","version":1,"room":"r","resume":{"participant":"a","secret":"b","name":"c"}}`, false, "unknown field"},
		{"too deep", `{"type":"candidate","pc":"pub","candidate":{"candidate":{"candidate":{"candidate":{"candidate":1}}}}}`, false, "nested"},
		{"invalid utf8", "{\"type\":\"chat\",\"text\":\"\xff\"}", false, "UTF-8"},
		{"unknown type", `{"type":"launch-missiles"}`, false, "unknown message type"},
		{"missing field", `{"type":"join","version":1}`, false, "missing"},
		{"field of other type", `{"type":"ping","sdp":"v=0"}`, false, "not allowed"},
		{"server field from client", `{"type":"chat","text":"hi","participant":"someone-else"}`, false, "not allowed"},
		{"forwarding from client", `{"type":"forwarding","video":["t1"]}`, false, "unknown message type"},
		{"video from client", `{"type":"ping","video":["t1"]}`, false, "not allowed"},
		{"all from client", `{"type":"ping","all":true}`, false, "not allowed"},
		{"bad pc", `{"type":"offer","pc":"both","sdp":"v=0"}`, false, "pc must be"},
		{"room too long", `{"type":"join","version":1,"room":"` + long(MaxRoomNameRunes+1) + `"}`, false, "room name"},
		{"room slash", `{"type":"join","version":1,"room":"a/b"}`, false, "not allowed"},
		{"room spaces", `{"type":"join","version":1,"room":" a"}`, false, "space"},
		{"name too long", `{"type":"join","version":1,"room":"r","name":"` + long(MaxDisplayNameRunes+1) + `"}`, false, "display name"},
		{"name control", `{"type":"join","version":1,"room":"r","name":"a\u0007"}`, false, "control"},
		{"chat too long", `{"type":"chat","text":"` + long(MaxChatRunes+1) + `"}`, false, "exceeds"},
		{"chat blank", `{"type":"chat","text":"   "}`, false, "empty"},
		{"sdp too long", `{"type":"offer","pc":"pub","sdp":"` + long(MaxSDPBytes+1) + `"}`, false, "sdp longer"},
		{"candidate too long", `{"type":"candidate","pc":"pub","candidate":{"candidate":"` + long(MaxCandidateBytes+1) + `"}}`, false, "candidate longer"},
		{"candidate control", `{"type":"candidate","pc":"pub","candidate":{"candidate":"a\r\nb"}}`, false, "control"},
		{"resume bad id", `{"type":"join","version":1,"room":"r","resume":{"participant":"a b","secret":"c"}}`, false, "resume"},
		{"prefs height", `{"type":"prefs","trackId":"t","maxHeight":99999}`, false, "maxHeight"},
		{"prefs negative", `{"type":"prefs","trackId":"t","maxHeight":-1}`, false, "maxHeight"},
		{"wrong type", `{"type":"chat","text":5}`, false, "field text has the wrong type"},
		{"password", `{"type":"join","version":1,"room":"r","password":"hunter2"}`, true, ""},
		{"password too long", `{"type":"join","version":1,"room":"r","password":"` + long(MaxPasswordBytes+1) + `"}`, false, "password longer"},
		{"password control", `{"type":"join","version":1,"room":"r","password":"a\u0000b"}`, false, "password contains"},
		{"token", `{"type":"join","version":1,"room":"r","token":"eyJhbGciOi"}`, true, ""},
		{"token too long", `{"type":"join","version":1,"room":"r","token":"` + long(MaxTokenBytes+1) + `"}`, false, "token longer"},
		{"set-password", `{"type":"set-password","password":"hunter2"}`, true, ""},
		{"set-password remove", `{"type":"set-password"}`, true, ""},
		{"set-password too long", `{"type":"set-password","password":"` + long(MaxPasswordBytes+1) + `"}`, false, "password longer"},
		{"set-password with room", `{"type":"set-password","room":"r"}`, false, "not allowed"},
		{"too big", `{"type":"chat","text":"` + long(MaxFrameBytes) + `"}`, false, "exceeds"},
		{"join rtts", `{"type":"join","version":1,"room":"r","rtts":[{"region":"eu-west","ms":23},{"region":"us","ms":0}]}`, true, ""},
		{"rtts too many", `{"type":"join","version":1,"room":"r","rtts":[` + manyRTTs(MaxRTTs+1) + `]}`, false, "more than"},
		{"rtts negative", `{"type":"join","version":1,"room":"r","rtts":[{"region":"eu","ms":-1}]}`, false, "ms out of range"},
		{"rtts huge", `{"type":"join","version":1,"room":"r","rtts":[{"region":"eu","ms":60001}]}`, false, "ms out of range"},
		{"rtts empty region", `{"type":"join","version":1,"room":"r","rtts":[{"region":"","ms":1}]}`, false, "region must be"},
		{"rtts long region", `{"type":"join","version":1,"room":"r","rtts":[{"region":"` + long(MaxRegionBytes+1) + `","ms":1}]}`, false, "region must be"},
		{"rtts region space", `{"type":"join","version":1,"room":"r","rtts":[{"region":"e u","ms":1}]}`, false, "not allowed"},
		{"rtts twice", `{"type":"join","version":1,"room":"r","rtts":[{"region":"eu","ms":1},{"region":"eu","ms":2}]}`, false, "twice"},
		{"rtts in chat", `{"type":"chat","text":"x","rtts":[{"region":"eu","ms":1}]}`, false, "not allowed"},
		{"rtts unknown key", `{"type":"join","version":1,"room":"r","rtts":[{"region":"eu","ms":1,"x":2}]}`, false, "unknown field"},
		{"redirect from client", `{"type":"join","version":1,"room":"r","url":"https://evil.example"}`, false, "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Decode([]byte(tc.in))
			if err == nil {
				err = m.Validate()
			}
			if tc.ok {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted %s", tc.in[:min(len(tc.in), 80)])
			}
			if !errors.Is(err, ErrBadMessage) {
				t.Errorf("error %v does not wrap ErrBadMessage", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestTooManyKeys(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"type":"chat","text":"x"`)
	for range MaxKeys {
		b.WriteString(`,"candidate":{"candidate":"a"}`)
	}
	b.WriteString("}")
	if _, err := Decode([]byte(b.String())); err == nil {
		t.Fatal("accepted a message with duplicate keys beyond MaxKeys")
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// and Validate passes survives an encode-decode round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"join","version":1,"room":"BraveOttersChaseSilverComets","name":"Ada"}`,
		`{"type":"join","version":1,"room":"r","resume":{"participant":"abc","secret":"def"}}`,
		`{"type":"offer","pc":"pub","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\n"}`,
		`{"type":"answer","pc":"sub","sdp":"v=0"}`,
		`{"type":"candidate","pc":"sub","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 7882 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"chat","text":"héllo 👋"}`,
		`{"type":"prefs","trackId":"t1","maxHeight":360}`,
		`{"type":"state","muted":{"audio":true,"video":false}}`,
		`{"type":"ping"}`, `{"type":"leave"}`,
		`{"type":"chat","text":"a","Text":"b"}`,
		`{"type":"join","version":1,"room":"r","resume":{"participant":"a","secret":"b","x":{}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if m.Validate() != nil {
			return
		}
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		m2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-decode of %s: %v", enc, err)
		}
		if err := m2.Validate(); err != nil {
			t.Fatalf("re-validate of %s: %v", enc, err)
		}
		enc2, _ := json.Marshal(m2)
		if string(enc) != string(enc2) {
			t.Fatalf("round trip changed the message:\n%s\n%s", enc, enc2)
		}
	})
}

// TestErrorsEchoNoValue: an error names the field or limit that was broken,
// never a value the client sent, so a client (or a log of client errors)
// never sees its own text reflected.
func TestErrorsEchoNoValue(t *testing.T) {
	const canary = "zqxcanary"
	long := strings.Repeat("é", MaxChatRunes+7)
	for _, in := range []string{
		`{"type":"` + canary + `"}`,
		`{"type":"ping","` + canary + `":1}`,
		`{"type":"join","version":1,"room":"r","resume":{"participant":"a","secret":"b","` + canary + `":1}}`,
		`{"type":"chat","text":"` + canary + `"` + canary,
		`{"type":"chat","text":` + canary + `}`,
		`[` + canary + `]`,
		`{"type":"chat","text":"` + long + `"}`,
		`{"type":"join","version":1,"room":"r","password":"` + canary + "\\u0001" + `"}`,
		`{"type":"join","version":1,"room":"r","token":"` + canary + strings.Repeat("x", MaxTokenBytes) + `"}`,
		`{"type":"set-password","password":"` + canary + strings.Repeat("x", MaxPasswordBytes) + `"}`,
		`{"type":"join","version":1,"room":"` + canary + `/x"}`,
		`{"type":"prefs","trackId":"` + canary + ` x"}`,
	} {
		m, err := Decode([]byte(in))
		if err == nil {
			err = m.Validate()
		}
		if err == nil {
			t.Errorf("accepted %s", in[:min(len(in), 60)])
			continue
		}
		for _, v := range []string{canary, "zqx", "2007", "é"} {
			if strings.Contains(err.Error(), v) {
				t.Errorf("error %q for %s echoes %q", err, in[:min(len(in), 60)], v)
			}
		}
	}
}

func manyRTTs(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"region":"r%d","ms":%d}`, i, i)
	}
	return strings.Join(parts, ",")
}
