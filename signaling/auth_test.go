package signaling_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

var testJWTSecret = []byte("this-is-a-test-secret-of-40-bytes-length")

func claims(room string, mod func(*signaling.Claims)) signaling.Claims {
	now := time.Now()
	c := signaling.Claims{Room: room, RegisteredClaims: jwt.RegisteredClaims{
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
	if mod != nil {
		mod(&c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c signaling.Claims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestJWTVerify is the table of what --auth jwt accepts and refuses.
func TestJWTVerify(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaPubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	rsaPubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPubDER})
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)

	hs, err := signaling.NewAuthenticator(signaling.AuthConfig{HMACSecret: testJWTSecret})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := signaling.NewAuthenticator(signaling.AuthConfig{PublicKey: &rsaKey.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	ed, err := signaling.NewAuthenticator(signaling.AuthConfig{PublicKey: edPub})
	if err != nil {
		t.Fatal(err)
	}
	audIss, err := signaling.NewAuthenticator(signaling.AuthConfig{HMACSecret: testJWTSecret, Audience: "meet", Issuer: "portal"})
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding
	unsigned := b64.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		b64.EncodeToString([]byte(`{"room":"r","moderator":true,"exp":`+jwtTime(time.Hour)+`}`)) + "."

	for _, tc := range []struct {
		name  string
		a     *signaling.Authenticator
		token string
		room  string
		ok    bool
	}{
		{"hs256 valid", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", nil)), "r", true},
		{"any room", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("*", nil)), "whatever", true},
		{"wrong room", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", nil)), "other", false},
		{"empty room claim", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("", nil)), "r", false},
		{"alg none", hs, unsigned, "r", false},
		{"alg none on rs", rs, unsigned, "r", false},
		{"wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-another!!"), claims("r", nil)), "r", false},
		{"hs512 not pinned", hs, sign(t, jwt.SigningMethodHS512, testJWTSecret, claims("r", nil)), "r", false},
		// HS/RS confusion: an HS256 token keyed with the RSA public key
		// (which an attacker knows) must not pass the RS256 verifier.
		{"hs with rsa public key as secret", rs, sign(t, jwt.SigningMethodHS256, rsaPubPEM, claims("r", nil)), "r", false},
		{"hs with rsa public key DER as secret", rs, sign(t, jwt.SigningMethodHS256, rsaPubDER, claims("r", nil)), "r", false},
		{"rs256 valid", rs, sign(t, jwt.SigningMethodRS256, rsaKey, claims("r", nil)), "r", true},
		{"rs256 on hs", hs, sign(t, jwt.SigningMethodRS256, rsaKey, claims("r", nil)), "r", false},
		{"ps256 on rs", rs, sign(t, jwt.SigningMethodPS256, rsaKey, claims("r", nil)), "r", false},
		{"eddsa valid", ed, sign(t, jwt.SigningMethodEdDSA, edPriv, claims("r", nil)), "r", true},
		{"eddsa on rs", rs, sign(t, jwt.SigningMethodEdDSA, edPriv, claims("r", nil)), "r", false},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-2 * time.Minute))
		})), "r", false},
		{"expired within leeway", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-5 * time.Second))
		})), "r", true},
		{"no exp", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) { c.ExpiresAt = nil })), "r", false},
		{"nbf in the future", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(5 * time.Minute))
		})), "r", false},
		{"nbf within leeway", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.NotBefore = jwt.NewNumericDate(time.Now().Add(5 * time.Second))
		})), "r", true},
		{"iat in the future", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.IssuedAt = jwt.NewNumericDate(time.Now().Add(5 * time.Minute))
		})), "r", false},
		{"aud and iss right", audIss, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.Audience, c.Issuer = jwt.ClaimStrings{"meet"}, "portal"
		})), "r", true},
		{"aud missing", audIss, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) { c.Issuer = "portal" })), "r", false},
		{"aud wrong", audIss, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.Audience, c.Issuer = jwt.ClaimStrings{"other"}, "portal"
		})), "r", false},
		{"iss wrong", audIss, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.Audience, c.Issuer = jwt.ClaimStrings{"meet"}, "evil"
		})), "r", false},
		{"name with control", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) { c.Name = "a\x07" })), "r", false},
		{"too many regions", hs, sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
			c.Regions = strings.Split(strings.Repeat("eu,", 17)+"eu", ",")
		})), "r", false},
		{"garbage", hs, "not.a.token", "r", false},
		{"too long", hs, strings.Repeat("a", 5000), "r", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.a.Verify(tc.token, tc.room)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("accepted: %+v", c)
			}
		})
	}

	// Claims come through.
	c, err := hs.Verify(sign(t, jwt.SigningMethodHS256, testJWTSecret, claims("r", func(c *signaling.Claims) {
		c.Moderator, c.Name, c.Regions = true, "Ada", []string{"eu"}
	})), "r")
	if err != nil || !c.Moderator || c.Name != "Ada" || len(c.Regions) != 1 {
		t.Fatalf("claims: %+v, %v", c, err)
	}
}

func jwtTime(d time.Duration) string { return strconv.FormatInt(time.Now().Add(d).Unix(), 10) }

// TestJWTKeys: a short or empty secret, a small RSA key, two keys at once
// and no key are refused with a clear error.
func TestJWTKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if _, err := signaling.ReadJWTSecret(write("empty", "\n")); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty secret: %v", err)
	}
	if _, err := signaling.ReadJWTSecret(write("short", "only-31-bytes-long-secret-xxxxx\n")); !errors.Is(err, signaling.ErrShortSecret) {
		t.Errorf("short secret: %v", err)
	}
	if s, err := signaling.ReadJWTSecret(write("ok", string(testJWTSecret)+"\n")); err != nil || string(s) != string(testJWTSecret) {
		t.Errorf("good secret: %q, %v", s, err)
	}
	if _, err := signaling.NewAuthenticator(signaling.AuthConfig{HMACSecret: []byte("short")}); !errors.Is(err, signaling.ErrShortSecret) {
		t.Errorf("short secret in config: %v", err)
	}
	if _, err := signaling.NewAuthenticator(signaling.AuthConfig{}); err == nil {
		t.Error("no key accepted")
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := signaling.NewAuthenticator(signaling.AuthConfig{PublicKey: &small.PublicKey}); err == nil {
		t.Error("1024-bit RSA key accepted")
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := signaling.NewAuthenticator(signaling.AuthConfig{PublicKey: edPub, HMACSecret: testJWTSecret}); err == nil {
		t.Error("secret and public key both accepted")
	}
	der, _ := x509.MarshalPKIXPublicKey(edPub)
	k, err := signaling.ReadJWTPublicKey(write("ed.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signaling.NewAuthenticator(signaling.AuthConfig{PublicKey: k}); err != nil {
		t.Errorf("Ed25519 PEM key: %v", err)
	}
	if _, err := signaling.ReadJWTPublicKey(write("junk.pem", "junk")); err == nil {
		t.Error("junk PEM accepted")
	}
}

// joinRaw sends one join on a new WebSocket and returns the server's first
// answer as sent, with the socket (the caller closes it).
func joinRaw(t *testing.T, n *node, m *wire.Message) ([]byte, *wire.Message, *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, err := dialFrom(ctx, n, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	if m.Version == 0 {
		m.Version = wire.Version
	}
	m.Type = wire.TypeJoin
	data, _ := json.Marshal(m)
	if err := ws.Write(ctx, websocket.MessageText, data); err != nil {
		t.Fatal(err)
	}
	_, got, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("no answer to join: %v", err)
	}
	var ans wire.Message
	if err := json.Unmarshal(got, &ans); err != nil {
		t.Fatal(err)
	}
	return got, &ans, ws
}

// refusedFrame is the one refusal every refused join gets, byte for byte.
const refusedFrame = `{"type":"error","error":{"code":"refused","message":"could not join: wrong password, locked room or not allowed","fatal":true}}`

func jwtNode(t *testing.T, createOnly bool) *node {
	t.Helper()
	a, err := signaling.NewAuthenticator(signaling.AuthConfig{HMACSecret: testJWTSecret})
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, func(c *signaling.Config) {
		c.Auth, c.AuthCreateOnly, c.StrongModeration = a, createOnly, true
		lenientSource(c)
	})
}

// TestJoinNeedsToken: under --auth jwt a join without a token, with a
// token for another room, an expired or an unsigned one is refused, each
// with the same frame; a token for the room (or every room) admits.
func TestJoinNeedsToken(t *testing.T) {
	n := jwtNode(t, false)
	room := roomname.New()
	mint := func(r string, mod func(*signaling.Claims)) string {
		tok, err := signaling.MintToken(testJWTSecret, claims(r, mod))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"no token", ""},
		{"other room", mint(room+"x", nil)},
		{"expired", mint(room, func(c *signaling.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Hour)) })},
		{"bad signature", mint(room, nil) + "x"},
	} {
		got, _, _ := joinRaw(t, n, &wire.Message{Room: room, Token: tc.token})
		if string(got) != refusedFrame {
			t.Errorf("%s: got %s, want %s", tc.name, got, refusedFrame)
		}
	}
	for _, tok := range []string{mint(room, nil), mint("*", nil)} {
		if _, m, _ := joinRaw(t, n, &wire.Message{Room: room, Token: tok}); m.Type != wire.TypeWelcome {
			t.Fatalf("valid token: got %+v", m)
		}
	}
	// The token's display name replaces the typed one.
	_, m, _ := joinRaw(t, n, &wire.Message{Room: room, Name: "Typed", Token: mint(room, func(c *signaling.Claims) { c.Name = "From Token" })})
	if m.Type != wire.TypeWelcome {
		t.Fatalf("named token: %+v", m)
	}
	_, m2, _ := joinRaw(t, n, &wire.Message{Room: room, Token: mint(room, nil)})
	found := false
	for _, p := range m2.Participants {
		found = found || p.Name == "From Token"
		if p.Name == "Typed" {
			t.Fatal("the typed name won over the token's")
		}
	}
	if !found {
		t.Fatalf("the token's name is not in the roster: %+v", m2.Participants)
	}
}

// TestAuthCreateOnly: with --auth-create-only a guest without a token
// cannot create a room (the refusal is the same frame as any other), a
// token holder can, and then the guest gets in.
func TestAuthCreateOnly(t *testing.T) {
	n := jwtNode(t, true)
	room := roomname.New()
	got, _, _ := joinRaw(t, n, &wire.Message{Room: room})
	if string(got) != refusedFrame {
		t.Fatalf("guest creating a room: %s", got)
	}
	tok, _ := signaling.MintToken(testJWTSecret, claims(room, func(c *signaling.Claims) { c.Moderator = true }))
	if _, m, _ := joinRaw(t, n, &wire.Message{Room: room, Token: tok}); m.Type != wire.TypeWelcome {
		t.Fatalf("token holder creating the room: %+v", m)
	}
	if _, m, _ := joinRaw(t, n, &wire.Message{Room: room}); m.Type != wire.TypeWelcome {
		t.Fatalf("guest joining the live room: %+v", m)
	}
	// A bad token is refused even where a guest would get in.
	if got, _, _ := joinRaw(t, n, &wire.Message{Room: room, Token: tok + "x"}); string(got) != refusedFrame {
		t.Fatalf("bad token on a live room: %s", got)
	}
}

// TestSetPasswordNeedsModerator: under --auth jwt a guest's set-password
// is refused (not fatal) and changes nothing.
func TestSetPasswordNeedsModerator(t *testing.T) {
	n := jwtNode(t, true)
	room := roomname.New()
	tok, _ := signaling.MintToken(testJWTSecret, claims(room, func(c *signaling.Claims) { c.Moderator = true }))
	joinRaw(t, n, &wire.Message{Room: room, Token: tok})
	_, m, ws := joinRaw(t, n, &wire.Message{Room: room})
	if m.Type != wire.TypeWelcome {
		t.Fatalf("guest: %+v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws.Write(ctx, websocket.MessageText, []byte(`{"type":"set-password","password":"guest-sets-this"}`))
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("guest's socket ended: %v", err)
		}
		var a wire.Message
		json.Unmarshal(data, &a)
		if a.Type == wire.TypeSecurity {
			t.Fatal("a guest changed the password")
		}
		if a.Type == wire.TypeError {
			if a.Error.Code != wire.CodeNotAllowed || a.Error.Fatal {
				t.Fatalf("got %s, want a non-fatal not-allowed", data)
			}
			break
		}
	}
	r, _, _ := n.Dir.Lookup(ctx, mesh.NewRoomKey(testRoomKey, room))
	if len(r.PasswordHash) != 0 {
		t.Fatal("the directory holds a password")
	}
}
