package signaling

import (
	"reflect"
	"strings"
	"testing"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

// TestCascadeKeyMessage: the cascade's key message takes a sender, a
// recipient and a valid blob, and nothing else; what decodes encodes to
// itself.
func TestCascadeKeyMessage(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{`{"v":1,"t":"key","by":"a","id":"b","k":"eyJ0IjoiaCJ9"}`, true},
		{`{"v":1,"t":"key","id":"b","k":"eyJ0IjoiaCJ9"}`, false},
		{`{"v":1,"t":"key","by":"a","k":"eyJ0IjoiaCJ9"}`, false},
		{`{"v":1,"t":"key","by":"a","id":"b","k":"not base64!"}`, false},
		{`{"v":1,"t":"key","by":"a","id":"b"}`, false},
		{`{"v":1,"t":"key","by":"a","id":"b","k":"eQ","a":"mute"}`, false},
		{`{"v":1,"t":"key","by":"a","id":"b","k":"eQ","g":1}`, false},
		{`{"v":1,"t":"left","id":"b","k":"eQ"}`, false},
		{`{"v":1,"t":"left","id":"b","by":"a"}`, false},
		{`{"v":1,"t":"mod","a":"mute","by":"a","id":"b","k":"eQ"}`, false},
		{`{"v":1,"t":"e2ee","id":"a"}`, true},
		{`{"v":1,"t":"e2ee"}`, false},
		{`{"v":1,"t":"e2ee","id":"a","by":"b"}`, false},
		{`{"v":1,"t":"e2ee","id":"a","g":2}`, false},
	} {
		m, err := decodeCascade([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			continue
		}
		data, err := encodeCascade(m)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeCascade(data)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Errorf("%s: round trip gives %+v, %v", tc.in, again, err)
		}
	}
}

// TestCascadeParticipantsCarryNoE2EE: roster, upsert and lobby messages
// never carry wire.Participant.E2EE (a node from before it refuses unknown
// fields); the flag crosses in e2ee messages, and the caller's message is
// left as it was.
func TestCascadeParticipantsCarryNoE2EE(t *testing.T) {
	m := &cascadeMsg{V: cascadeVersion, T: cascadeUpsert, P: []wire.Participant{{ID: "a", E2EE: true}, {ID: "b"}}}
	data, err := encodeCascade(m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "e2ee") {
		t.Errorf("upsert on the cascade carries the E2EE flag: %s", data)
	}
	if !m.P[0].E2EE {
		t.Errorf("encodeCascade changed the caller's participant")
	}
}
