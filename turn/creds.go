package turn

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what the TURN REST scheme specifies.
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultCredentialTTL is how long minted credentials are valid for Allocate.
const DefaultCredentialTTL = 10 * time.Minute

// kidLen is the length of the key-ID prefix of the opaque part of minted
// usernames. It names the secret that minted the credential, so the server
// can pick the right one of the current and the previous secret during a
// rotation (pion asks for one key per request). It is derived from the
// secret by HMAC and reveals nothing about it.
const kidLen = 6

// Credentials mints TURN REST credentials valid for ttl from now:
// username "expiry:id" where expiry is a Unix time and id is opaque and
// random (it names no room and no participant), password
// base64(HMAC-SHA1(secret, username)). The same secret given to coturn as
// static-auth-secret makes coturn accept them too.
func Credentials(secret []byte, ttl time.Duration, now time.Time) (username, password string) {
	var id [16]byte
	rand.Read(id[:])
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + keyID(secret) + base64.RawURLEncoding.EncodeToString(id[:])
	return username, Password(secret, username)
}

// CredentialsFor mints TURN REST credentials of one participant's session:
// username "expiry:kid.sessionID", where kid names the secret (see kidLen)
// and sessionID is the caller's opaque ID of the session (1 to 64
// characters of A-Z a-z 0-9 - _; never a secret, since a username travels
// in clear). The server counts the session's allocations against
// MaxAllocationsPerUser whichever of its credentials made them, and
// Server.EndSession ends them all. Server.Credentials mints credentials
// that only that server accepts.
func CredentialsFor(secret []byte, sessionID string, ttl time.Duration, now time.Time) (username, password string, err error) {
	return credentialsFor(secret, "", sessionID, ttl, now)
}

// credentialsFor is CredentialsFor for the server named issuer (empty:
// any server): username "expiry:kid.issuer.sessionID".
func credentialsFor(secret []byte, issuer, sessionID string, ttl time.Duration, now time.Time) (username, password string, err error) {
	if !validSessionID(sessionID) || issuer != "" && !validSessionID(issuer) {
		return "", "", ErrSessionID
	}
	username = strconv.FormatInt(now.Add(ttl).Unix(), 10) + ":" + keyID(secret) + "."
	if issuer != "" {
		username += issuer + "."
	}
	username += sessionID
	return username, Password(secret, username), nil
}

// maxSessionID bounds the session ID carried in a username.
const maxSessionID = 64

func validSessionID(id string) bool {
	if id == "" || len(id) > maxSessionID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseSession returns the issuing server and the session a username's
// allocations count against: those of a username credentialsFor minted
// (issuer empty when any server may take it), else no issuer and the
// username's opaque part (each credential minted otherwise is a session of
// its own).
func parseSession(username string) (issuer, session string) {
	_, id, _ := strings.Cut(username, ":")
	if len(id) <= kidLen+1 || id[kidLen] != '.' {
		return "", id
	}
	rest := id[kidLen+1:]
	if i := strings.IndexByte(rest, '.'); i >= 0 {
		return rest[:i], rest[i+1:]
	}
	return "", rest
}

// sessionOf is the session of parseSession.
func sessionOf(username string) string {
	_, session := parseSession(username)
	return session
}

// Password returns base64(HMAC-SHA1(secret, username)).
func Password(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func keyID(secret []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("meshmeet turn key id"))
	return hex.EncodeToString(mac.Sum(nil))[:kidLen]
}

// Secrets holds the current TURN secret and, during a rotation, the previous
// one. It is safe for concurrent use; the server and the function that mints
// credentials for signaling share one.
type Secrets struct {
	mu        sync.RWMutex
	cur       []byte
	curKID    string
	prev      []byte // nil: no rotation in progress
	prevKID   string
	prevUntil time.Time
}

// NewSecrets returns Secrets holding secret. It copies secret.
func NewSecrets(secret []byte) *Secrets {
	s := &Secrets{}
	s.cur = bytes.Clone(secret)
	s.curKID = keyID(secret)
	return s
}

// Current returns a copy of the current secret.
func (s *Secrets) Current() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return bytes.Clone(s.cur)
}

// Mint returns credentials from the current secret (see Credentials).
func (s *Secrets) Mint(ttl time.Duration, now time.Time) (username, password string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return Credentials(s.cur, ttl, now)
}

// MintFor returns credentials of a session from the current secret (see
// CredentialsFor).
func (s *Secrets) MintFor(sessionID string, ttl time.Duration, now time.Time) (username, password string, err error) {
	return s.mintFor("", sessionID, ttl, now)
}

func (s *Secrets) mintFor(issuer, sessionID string, ttl time.Duration, now time.Time) (username, password string, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return credentialsFor(s.cur, issuer, sessionID, ttl, now)
}

// Rotate makes secret the current one. The old one keeps authenticating
// the credentials it minted until now+overlap. Rotating to the current
// secret does nothing.
func (s *Secrets) Rotate(secret []byte, overlap time.Duration, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(secret, s.cur) {
		return
	}
	s.prev, s.prevKID, s.prevUntil = s.cur, s.curKID, now.Add(overlap)
	s.cur, s.curKID = bytes.Clone(secret), keyID(secret)
}

// lookup returns the secret that minted username's opaque part: the
// previous secret if its key ID matches and the overlap has not ended, else
// the current one (which also covers credentials minted elsewhere, without
// a key ID).
func (s *Secrets) lookup(id string, now time.Time) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.prev != nil && strings.HasPrefix(id, s.prevKID) && !strings.HasPrefix(id, s.curKID) && now.Before(s.prevUntil) {
		return s.prev
	}
	return s.cur
}

// credVerdict is why a username was accepted or refused.
type credVerdict int

const (
	credOK credVerdict = iota
	credMalformed
	credExpired
	credFuture
)

// checkUsername parses a TURN REST username and checks its expiry. On
// Allocate (allocate true) the expiry must lie in (now, now+maxTTL]; on
// the other methods, which only act on an existing allocation made with
// the same username, it may have passed by at most grace.
func checkUsername(username string, allocate bool, now time.Time, maxTTL, grace time.Duration) (id string, v credVerdict) {
	exp, id, ok := strings.Cut(username, ":")
	if !ok || id == "" || exp == "" || len(username) > 256 || strings.Contains(id, ":") {
		return "", credMalformed
	}
	for _, c := range exp {
		if c < '0' || c > '9' {
			return "", credMalformed
		}
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || sec > 1<<40 {
		return "", credMalformed
	}
	expiry := time.Unix(sec, 0)
	switch {
	case expiry.After(now.Add(maxTTL)):
		return id, credFuture
	case allocate && !expiry.After(now):
		return id, credExpired
	case !allocate && !expiry.Add(grace).After(now):
		return id, credExpired
	}
	return id, credOK
}
