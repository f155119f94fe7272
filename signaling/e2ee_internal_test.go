package signaling

import (
	"reflect"
	"testing"
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
