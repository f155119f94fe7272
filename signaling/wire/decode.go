package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"unicode/utf8"
)

// ErrBadMessage is wrapped by every error Decode and Validate return.
var ErrBadMessage = errors.New("bad message")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadMessage}, args...)...)
}

// knownKeys holds every JSON key of every wire struct, spelled exactly.
// encoding/json matches keys case-insensitively and keeps the last of
// duplicate keys; browsers and other decoders differ, so Decode accepts only
// exact spellings and no key twice.
var knownKeys = func() map[string]bool {
	keys := map[string]bool{}
	for _, v := range []any{Message{}, Resume{}, Candidate{}, Muted{}, ICEServer{}, Participant{}, Track{}, Error{}, RegionRTT{}, SpeakerStat{}} {
		t := reflect.TypeOf(v)
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			keys[name] = true
		}
	}
	return keys
}()

// Decode parses one message strictly: at most MaxFrameBytes, valid UTF-8,
// nesting at most MaxDepth, at most MaxKeys keys, no duplicate or
// case-variant key, no unknown field, no trailing data. It does not check
// which fields the type allows; Validate does.
func Decode(data []byte) (*Message, error) {
	if len(data) > MaxFrameBytes {
		return nil, bad("message exceeds %d bytes", MaxFrameBytes)
	}
	if !utf8.Valid(data) {
		return nil, bad("not valid UTF-8")
	}
	if err := scan(data); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Message
	if err := dec.Decode(&m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// Field is a path of our own keys, never the client's value.
			return nil, bad("field %s has the wrong type", te.Field)
		}
		if strings.HasPrefix(err.Error(), "json: unknown field") {
			// A key of the protocol in an object that does not take it.
			return nil, bad("unknown field")
		}
		return nil, bad("malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("trailing data after message")
	}
	return &m, nil
}

// scan walks the token stream once to enforce the structural limits that
// encoding/json does not.
func scan(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*scanFrame
	nkeys := 0
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if len(stack) != 0 {
				return bad("truncated")
			}
			return nil
		}
		if err != nil {
			return bad("malformed JSON") // the decoder's text quotes input
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return bad("message must be a JSON object")
			}
			first = false
		}
		var top *scanFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				afterValue(stack)
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return bad("object key expected")
			}
			if !knownKeys[key] {
				return bad("unknown field") // its name is the client's
			}
			lk := strings.ToLower(key)
			if top.keys[lk] {
				// key is one of knownKeys: a name of the protocol.
				return bad("duplicate field %q", key)
			}
			top.keys[lk] = true
			nkeys++
			if nkeys > MaxKeys {
				return bad("more than %d fields", MaxKeys)
			}
			top.expect = false
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{', '[':
			if len(stack) >= MaxDepth {
				return bad("nested deeper than %d", MaxDepth)
			}
			stack = append(stack, &scanFrame{object: d == '{', keys: map[string]bool{}, expect: d == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
			afterValue(stack)
		default:
			afterValue(stack)
		}
	}
}

type scanFrame struct {
	object bool
	keys   map[string]bool // lower-cased keys seen in this object
	expect bool            // the next token in this object is a key
}

// afterValue marks that a value ended inside the innermost container: in an
// object, a key comes next.
func afterValue(stack []*scanFrame) {
	if n := len(stack); n > 0 && stack[n-1].object {
		stack[n-1].expect = true
	}
}
