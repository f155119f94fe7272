package e2e

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/crypto/pbkdf2"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/roomname"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// The key schedule of web/e2ee.js and web/e2ee-worker.js (docs/e2ee.md),
// written again here from the document so that the test checks the
// browser's frames against it rather than against the browser's code.
const (
	e2eeIterations = 200_000
	e2eeSaltPrefix = "meshmeet-e2ee-v1 room "
	e2eeInfoPrefix = "meshmeet-e2ee-v1 sender "
	e2eeTrailer    = 13 // IV (12) + key index (1)
	e2eeTag        = 16
)

// senderAEAD derives a sender's AES-256-GCM from the passphrase, the room
// name and the sender's participant ID.
func senderAEAD(t *testing.T, passphrase, room, participant string) cipher.AEAD {
	t.Helper()
	secret := pbkdf2.Key([]byte(passphrase), []byte(e2eeSaltPrefix+room), e2eeIterations, 32, sha256.New)
	key := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, secret, nil, []byte(e2eeInfoPrefix+participant)), key); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return aead
}

// openFrame checks an encrypted frame's tag with aead; clear is the
// number of bytes in clear (1 for Opus, 10 or 3 for VP8).
func openFrame(aead cipher.AEAD, frame []byte, clear int) ([]byte, error) {
	if len(frame) < clear+e2eeTag+e2eeTrailer {
		return nil, errors.New("shorter than prefix, tag and trailer")
	}
	end := len(frame) - e2eeTrailer
	if frame[len(frame)-1] != 0 {
		return nil, fmt.Errorf("key index %d, want 0", frame[len(frame)-1])
	}
	return aead.Open(nil, frame[end:end+12], frame[clear:end], frame[:clear])
}

// vp8Clear is the clear prefix of a VP8 frame: 10 bytes of a keyframe, 3
// of a delta frame.
func vp8Clear(frame []byte) int {
	if len(frame) > 0 && frame[0]&1 == 0 {
		return 10
	}
	return 3
}

// frameHash is the probe hash of web/e2ee-worker.js: FNV-1a 32 and the
// length.
func frameHash(b []byte) string {
	h := fnv.New32a()
	h.Write(b)
	return fmt.Sprintf("%x:%d", h.Sum32(), len(b))
}

// sniffer is a pion participant that subscribes to everything and keeps
// the payloads it receives: whole VP8 frames (reassembled from the RTP
// payload descriptor) and Opus packets, per publisher.
type sniffer struct {
	c *client.Client

	mu     sync.Mutex
	video  map[string][][]byte // participant → frames
	audio  map[string][][]byte
	broken int // frames with a gap, not kept
	// odd counts packets that are neither a piece of an encoded frame
	// nor padding: an empty payload without padding, a VP8 payload
	// descriptor that does not parse (the bridge and the relay must
	// originate nothing). padding counts padding-only packets, which the
	// publishing browser sends to probe bandwidth and the bridge forwards
	// as they came; they carry no payload.
	odd, padding int
}

func newSniffer(t *testing.T, base, room string) *sniffer {
	t.Helper()
	s := &sniffer{video: map[string][][]byte{}, audio: map[string][][]byte{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Join(ctx, base, room, client.Options{Name: "Sniffer", OnTrack: s.onTrack})
	if err != nil {
		t.Fatalf("pion client join: %v", err)
	}
	s.c = c
	t.Cleanup(c.Close)
	return s
}

func (s *sniffer) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	participant := tr.StreamID()
	go func() {
		var (
			frame   []byte
			ts      uint32
			next    uint16
			started bool
		)
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			if len(pkt.Payload) == 0 {
				s.mu.Lock()
				if pkt.Padding {
					s.padding++
				} else {
					s.odd++
				}
				s.mu.Unlock()
				continue
			}
			if tr.Kind() == webrtc.RTPCodecTypeAudio {
				s.keep(s.audio, participant, append([]byte(nil), pkt.Payload...))
				continue
			}
			var vp8 codecs.VP8Packet
			body, err := vp8.Unmarshal(pkt.Payload)
			if err != nil {
				s.mu.Lock()
				s.odd++
				s.mu.Unlock()
				started = false
				continue
			}
			if vp8.S == 1 && vp8.PID == 0 {
				if started {
					s.mu.Lock()
					s.broken++
					s.mu.Unlock()
				}
				frame, ts, started = append(frame[:0], body...), pkt.Timestamp, true
			} else if started && pkt.Timestamp == ts && pkt.SequenceNumber == next {
				frame = append(frame, body...)
			} else {
				if started {
					s.mu.Lock()
					s.broken++
					s.mu.Unlock()
				}
				started = false
				continue
			}
			next = pkt.SequenceNumber + 1
			if pkt.Marker {
				s.keep(s.video, participant, append([]byte(nil), frame...))
				started = false
			}
		}
	}()
}

func (s *sniffer) keep(m map[string][][]byte, participant string, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := append(m[participant], b)
	if len(l) > 1000 {
		l = append(l[:0:0], l[len(l)-1000:]...)
	}
	m[participant] = l
}

func (s *sniffer) frames(participant string) (video, audio [][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.video[participant]...), append([][]byte(nil), s.audio[participant]...)
}

// e2eeState is window.meshmeet.e2ee.
type e2eeState struct {
	Support  string `json:"support"`
	Active   bool   `json:"active"`
	Mode     string `json:"mode"`
	Required bool   `json:"required"`
	Stats    *struct {
		Encrypted int              `json:"encrypted"`
		Decrypted int              `json:"decrypted"`
		Failed    int              `json:"failed"`
		Clear     int              `json:"clear"`
		Dropped   int              `json:"dropped"`
		Keys      map[string][]int `json:"keys"`
		Tracks    map[string]struct {
			Decrypted   int    `json:"decrypted"`
			Failed      int    `json:"failed"`
			Clear       int    `json:"clear"`
			Participant string `json:"participant"`
		} `json:"tracks"`
	} `json:"stats"`
}

// perParticipant sums a page's decrypted and failed frames by sender.
func (s e2eeState) perParticipant() (decrypted, failed map[string]int) {
	decrypted, failed = map[string]int{}, map[string]int{}
	if s.Stats == nil {
		return
	}
	for _, t := range s.Stats.Tracks {
		decrypted[t.Participant] += t.Decrypted
		failed[t.Participant] += t.Failed
	}
	return
}

type probe struct {
	TX []string `json:"tx"`
	RX []string `json:"rx"`
}

const probeExpr = `window.meshmeet.e2eeProbe()`

// TestBrowserE2EE: two pages with the same passphrase decode each other's
// video and audio through the bridge; a third page with a wrong passphrase
// decodes nothing of theirs (every frame of theirs counted as failed) and
// they nothing of its; a pion participant receives payloads that are not
// the codec's bytes after the clear prefix and whose GCM tags verify with
// the key derived as docs/e2ee.md says; the encrypted frames are
// byte-identical at the sender, at the pion receiver and at the other
// pages; a page without a passphrase sends frames that do not verify
// (an unencrypted run). A node with --e2ee-required refuses a client
// that cannot encrypt (pion) and a page without a passphrase, which
// goes back to the pre-join screen saying why, and admits a page with
// one.
func TestBrowserE2EE(t *testing.T) {
	if !inNamespace(t, "TestBrowserE2EE") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)
	srv := startServer(t, bin)

	const pass = "correct horse battery staple"
	room := roomname.New()
	page := srv.URL + "/" + url.PathEscape(room) + "?prejoin=0&e2eeprobe=1"
	alice := newBrowser(t, chromium, "alice", true)
	bob := newBrowser(t, chromium, "bob", true)
	carol := newBrowser(t, chromium, "carol", true)
	alice.navigate(t, page+"#name=Alice&e2ee="+url.QueryEscape(pass))
	// Bob takes the createEncodedStreams fallback where the browser still
	// has it.
	bob.navigate(t, srv.URL+"/"+url.PathEscape(room)+"?prejoin=0&e2eeprobe=1&e2eestreams=1#name=Bob&e2ee="+url.QueryEscape(pass))

	ids := map[*browser]string{}
	for _, b := range []*browser{alice, bob} {
		st := waitFor(t, b, "E2EE active", 30*time.Second, `window.meshmeet.e2ee`,
			func(s e2eeState) bool { return s.Active })
		t.Logf("%s: E2EE mode %s", b.name, st.Mode)
		ids[b] = waitFor(t, b, "joined", 30*time.Second, `window.meshmeet.joined ? window.meshmeet.participant : ''`,
			func(id string) bool { return id != "" })
	}
	sniff := newSniffer(t, srv.URL, room)

	// Same passphrase: each decodes the other's video and audio.
	for _, p := range [][2]*browser{{alice, bob}, {bob, alice}} {
		b, other := p[0], p[1]
		first := waitFor(t, b, "the other's video decoded and audio received", 90*time.Second, mediaExpr,
			func(s mediaStats) bool { return s.FramesDecoded > 0 && s.AudioSamples > 0 })
		waitFor(t, b, "more video frames decoded", 60*time.Second, mediaExpr,
			func(s mediaStats) bool {
				return s.FramesDecoded >= first.FramesDecoded+30 && s.AudioSamples > first.AudioSamples
			})
		st := waitFor(t, b, "the other's audio and video decrypted", 30*time.Second, `window.meshmeet.e2ee`,
			func(s e2eeState) bool {
				n := 0
				for _, tr := range s.Stats.Tracks {
					if tr.Participant == ids[other] && tr.Decrypted > 50 {
						n++
					}
				}
				return n >= 2
			})
		dec, fail := st.perParticipant()
		t.Logf("%s: decrypted %d frames of %s, %d failed; encrypted %d, dropped %d", b.name, dec[ids[other]], other.name, fail[ids[other]], st.Stats.Encrypted, st.Stats.Dropped)
		if fail[ids[other]] > dec[ids[other]]/100 {
			t.Errorf("%s: %d of %s's frames failed to decrypt (%d decrypted)", b.name, fail[ids[other]], other.name, dec[ids[other]])
		}
		tiles := waitFor(t, b, "the other's tile says E2EE", 10*time.Second,
			`[...document.querySelectorAll('#tiles .tile')].map((el) => el.dataset.e2ee + ':' + el.querySelector('.tile-e2ee').textContent)`,
			func(s []string) bool { return contains(s, "e2ee:E2EE") && len(s) >= 2 })
		t.Logf("%s: tiles %v", b.name, tiles)
	}

	// Screen share is encrypted too: Bob decodes it, its tile says E2EE.
	alice.do(t, chromedp.Click(chromedp.ID("btn-screen")))
	sharing := waitFor(t, alice, "screen share started (or refused)", 30*time.Second,
		`(() => { const s = window.meshmeet.session; return s.screen ? 'on' : (window.meshmeet.errors.length ? 'error' : ''); })()`,
		func(s string) bool { return s != "" })
	if sharing != "on" {
		t.Fatalf("screen share did not start: %s", sharing)
	}
	screen := waitFor(t, bob, "Alice's screen decrypted and shown, its tile saying E2EE", 60*time.Second,
		`(() => { const el = [...document.querySelectorAll('#tiles .tile')].find((e) => e.querySelector('.tile-name').textContent === 'Alice (screen)');
		  if (!el) return null;
		  const st = window.meshmeet.e2ee.stats.tracks[el.dataset.track] || {};
		  return { width: el.querySelector('video').videoWidth, e2ee: el.dataset.e2ee, decrypted: st.decrypted || 0, failed: st.failed || 0 }; })()`,
		func(s *struct {
			Width     int    `json:"width"`
			E2EE      string `json:"e2ee"`
			Decrypted int    `json:"decrypted"`
			Failed    int    `json:"failed"`
		}) bool {
			return s != nil && s.Width > 0 && s.E2EE == "e2ee" && s.Decrypted > 10
		})
	t.Logf("bob: Alice's screen share %+v", *screen)
	if screen.Failed > 0 {
		t.Errorf("bob: %d frames of Alice's screen failed to decrypt", screen.Failed)
	}
	alice.do(t, chromedp.Click(chromedp.ID("btn-screen")))

	// A wrong passphrase: Carol decodes nothing of theirs, they nothing of hers.
	carol.navigate(t, page+"#name=Carol&e2ee=wrong")
	ids[carol] = waitFor(t, carol, "joined", 30*time.Second, `window.meshmeet.joined ? window.meshmeet.participant : ''`,
		func(id string) bool { return id != "" })
	waitFor(t, carol, "Alice's and Bob's frames failing", 60*time.Second, `window.meshmeet.e2ee`,
		func(s e2eeState) bool {
			_, fail := s.perParticipant()
			return fail[ids[alice]] > 100 && fail[ids[bob]] > 100
		})
	time.Sleep(3 * time.Second) // let more arrive, to see that none decodes
	cst := waitFor(t, carol, "E2EE stats", 10*time.Second, `window.meshmeet.e2ee`, func(e2eeState) bool { return true })
	cm := waitFor(t, carol, "media stats", 10*time.Second, mediaExpr, func(mediaStats) bool { return true })
	dec, fail := cst.perParticipant()
	t.Logf("carol (wrong passphrase): decrypted %v, failed %v, media %+v", dec, fail, cm)
	if dec[ids[alice]] != 0 || dec[ids[bob]] != 0 || cm.FramesDecoded != 0 {
		t.Errorf("carol with the wrong passphrase decrypted %d of Alice's and %d of Bob's frames, decoded %d video frames; want none",
			dec[ids[alice]], dec[ids[bob]], cm.FramesDecoded)
	}
	waitFor(t, carol, "Alice's and Bob's tiles say they cannot be decrypted", 10*time.Second,
		`[...document.querySelectorAll('#tiles .tile')].filter((el) => el.dataset.e2ee === 'failing').length`,
		func(n int) bool { return n >= 2 })
	for _, b := range []*browser{alice, bob} {
		st := waitFor(t, b, "Carol's frames failing", 60*time.Second, `window.meshmeet.e2ee`,
			func(s e2eeState) bool {
				_, fail := s.perParticipant()
				return fail[ids[carol]] > 50
			})
		if dec, _ := st.perParticipant(); dec[ids[carol]] != 0 {
			t.Errorf("%s decrypted %d of Carol's frames (wrong passphrase); per track %+v", b.name, dec[ids[carol]], st.Stats.Tracks)
		}
	}

	// The pion participant: GCM tags verify with the key derived from the
	// passphrase for Alice, and the bytes after the clear prefix are not
	// the codec's.
	var video, audio [][]byte
	deadline := time.Now().Add(60 * time.Second)
	for {
		video, audio = sniff.frames(ids[alice])
		if len(video) >= 60 && len(audio) >= 60 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(video) < 60 || len(audio) < 60 {
		t.Fatalf("pion client received %d whole video frames and %d audio packets of Alice, want 60 each", len(video), len(audio))
	}
	aead := senderAEAD(t, pass, room, ids[alice])
	keyframes, differ := 0, 0
	for i, f := range video {
		n := vp8Clear(f)
		pt, err := openFrame(aead, f, n)
		if err != nil {
			t.Errorf("Alice's video frame %d (%d bytes): GCM does not verify: %v", i, len(f), err)
			continue
		}
		if len(f) != n+len(pt)+e2eeTag+e2eeTrailer {
			t.Errorf("video frame %d: %d bytes encrypted, %d in clear prefix and %d plain: want 29 more", i, len(f), n, len(pt))
		}
		if n == 10 {
			keyframes++
			// The clear prefix is what the bridge reads: frame tag,
			// start code, size.
			if f[3] != 0x9d || f[4] != 0x01 || f[5] != 0x2a {
				t.Errorf("keyframe %d: no VP8 start code in the clear prefix: % x", i, f[:10])
			}
		}
		if string(pt) != string(f[n:n+len(pt)]) {
			differ++
		}
	}
	for i, p := range audio {
		if _, err := openFrame(aead, p, 1); err != nil {
			t.Errorf("Alice's audio packet %d (%d bytes): GCM does not verify: %v", i, len(p), err)
		}
	}
	// An IV never repeats under Alice's key: 4 bytes fixed per page, then
	// a counter over every frame she encrypts, audio and video.
	ivs := map[string]bool{}
	for _, f := range append(append([][]byte(nil), video...), audio...) {
		iv := string(f[len(f)-e2eeTrailer : len(f)-1])
		if ivs[iv] {
			t.Errorf("IV % x used twice under Alice's key", iv)
			break
		}
		ivs[iv] = true
		if iv[:4] != string(video[0][len(video[0])-e2eeTrailer:len(video[0])-e2eeTrailer+4]) {
			t.Errorf("IV % x: its first 4 bytes differ from the page's", iv)
			break
		}
	}
	if differ != len(video) {
		t.Errorf("%d of %d video frames carry their VP8 bytes in clear after the prefix", len(video)-differ, len(video))
	}
	sniff.mu.Lock()
	broken, odd, padding := sniff.broken, sniff.odd, sniff.padding
	sniff.mu.Unlock()
	t.Logf("pion client: %d video frames (%d keyframes) and %d audio packets of Alice verified with the derived key; %d frames with a gap skipped; %d padding-only packets (the browsers' probes, no payload)",
		len(video), keyframes, len(audio), broken, padding)
	if odd != 0 {
		t.Errorf("pion client received %d packets that are neither frame pieces nor padding: the server originated packets into an E2EE meeting", odd)
	}
	if _, err := openFrame(senderAEAD(t, "wrong", room, ids[alice]), video[0], vp8Clear(video[0])); err == nil {
		t.Errorf("Alice's frame verifies under the wrong passphrase's key")
	}

	// Byte-identical: what the pion client and Bob received of Alice is
	// what Alice's worker produced. Receivers are read first: a sender
	// read first would miss the frames sent since.
	video, audio = sniff.frames(ids[alice])
	rx := waitFor(t, bob, "Bob's probe", 10*time.Second, probeExpr, func(p *probe) bool { return p != nil && len(p.RX) > 0 })
	tx := waitFor(t, alice, "Alice's probe", 10*time.Second, probeExpr, func(p *probe) bool { return p != nil && len(p.TX) > 0 })
	sent := map[string]bool{}
	for _, h := range tx.TX {
		sent[h] = true
	}
	checkIdentical(t, "pion client", sent, append(video[max(0, len(video)-100):], audio[max(0, len(audio)-100):]...))
	tx2 := waitFor(t, carol, "Carol's probe", 10*time.Second, probeExpr, func(p *probe) bool { return p != nil })
	for _, h := range tx2.TX {
		sent[h] = true
	}
	missing := 0
	recent := rx.RX[max(0, len(rx.RX)-300):]
	for _, h := range recent {
		if !sent[h] {
			missing++
		}
	}
	t.Logf("bob: %d of the last %d encrypted frames received are byte-identical to a frame Alice or Carol sent", len(recent)-missing, len(recent))
	if missing > 0 || len(recent) < 100 {
		t.Errorf("bob: %d of %d received frames differ from every frame sent", missing, len(recent))
	}

	// An unencrypted run: a page without a passphrase in another room
	// sends frames that carry no verifiable trailer.
	room2 := roomname.New()
	carol.navigate(t, srv.URL+"/"+url.PathEscape(room2)+"?prejoin=0#name=Dave")
	dave := waitFor(t, carol, "joined without a passphrase", 30*time.Second, `window.meshmeet.joined && !window.meshmeet.e2ee.active ? window.meshmeet.participant : ''`,
		func(id string) bool { return id != "" })
	sniff2 := newSniffer(t, srv.URL, room2)
	deadline = time.Now().Add(60 * time.Second)
	for {
		video, _ = sniff2.frames(dave)
		if len(video) >= 30 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	clearAEAD := senderAEAD(t, pass, room2, dave)
	verified := 0
	for _, f := range video {
		if _, err := openFrame(clearAEAD, f, vp8Clear(f)); err == nil {
			verified++
		}
	}
	if len(video) < 30 || verified != 0 {
		t.Errorf("unencrypted run: %d frames, %d verify as encrypted; want at least 30, none", len(video), verified)
	}

	// A moderator requires E2EE in the security dialog: the directory
	// keeps it, Bob is told, and a page without a passphrase is refused to
	// the pre-join screen.
	// The pion participant does not encrypt: it leaves first (a clear
	// participant present makes the toggle refuse).
	lctx, lcancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := sniff.c.Leave(lctx); err != nil {
		t.Logf("pion client leave: %v", err)
	}
	lcancel()
	waitFor(t, bob, "only Alice left with Bob", 30*time.Second, `window.meshmeet.participants.length`, func(n int) bool { return n == 1 })
	alice.do(t, chromedp.Click(chromedp.ID("btn-security")))
	alice.do(t, chromedp.Click(chromedp.ID("e2ee-required")))
	alice.do(t, chromedp.Click(chromedp.ID("security-close")))
	waitFor(t, bob, "told that the room requires E2EE", 30*time.Second, `window.meshmeet.e2ee.required`, func(r bool) bool { return r })
	carol.navigate(t, srv.URL+"/"+url.PathEscape(room)+"?prejoin=0#name=Eve")
	waitFor(t, carol, "a clear page refused to the pre-join screen", 30*time.Second,
		`!document.getElementById('prejoin').hidden && !document.getElementById('e2ee-note').hidden`, func(v bool) bool { return v })
	if n := waitFor(t, bob, "the participants", 5*time.Second, `window.meshmeet.participants.length`, func(int) bool { return true }); n != 1 {
		t.Errorf("bob sees %d others after the refusal, want Alice only", n)
	}

	for _, b := range []*browser{alice, bob} {
		b.checkConsole(t)
	}

	t.Run("required", func(t *testing.T) { testE2EERequired(t, bin, chromium, alice, carol) })
}

// testE2EERequired: a node with --e2ee-required refuses a pion client
// (which cannot encrypt) and a page without a passphrase, which returns to
// the pre-join screen saying that the room requires E2EE; a page with a
// passphrase joins and says the room requires it.
func testE2EERequired(t *testing.T, bin, chromium string, with, without *browser) {
	srv := startServer(t, bin, "--e2ee-required")
	room := roomname.New()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := client.Join(ctx, srv.URL, room, client.Options{Name: "Clear"})
	var werr *wire.Error
	if !errors.As(err, &werr) || werr.Code != wire.CodeE2EERequired {
		t.Fatalf("pion client in an E2EE-required room: err %v, want %s", err, wire.CodeE2EERequired)
	}
	page := srv.URL + "/" + url.PathEscape(room) + "?prejoin=0"
	with.navigate(t, page+"#name=Alice&e2ee=secret")
	st := waitFor(t, with, "joined an E2EE-required room", 30*time.Second,
		`window.meshmeet.joined ? window.meshmeet.e2ee : null`, func(s *e2eeState) bool { return s != nil && s.Required })
	if !st.Active {
		t.Errorf("joined an E2EE-required room without encrypting: %+v", st)
	}
	without.navigate(t, page+"#name=Dave")
	note := waitFor(t, without, "the pre-join screen saying the room requires E2EE", 30*time.Second,
		`(() => { const n = document.getElementById('e2ee-note'); return !document.getElementById('prejoin').hidden && !n.hidden ? n.textContent : ''; })()`,
		func(s string) bool { return s != "" })
	t.Logf("refused page: %q", note)
	n := waitFor(t, with, "still alone in the meeting", 5*time.Second, `window.meshmeet.participants.length`, func(int) bool { return true })
	if n != 0 {
		t.Errorf("the refused page shows up in the meeting: %d participants", n)
	}
}

// checkIdentical fails unless every payload in got hashes to a frame in sent.
func checkIdentical(t *testing.T, who string, sent map[string]bool, got [][]byte) {
	t.Helper()
	missing := 0
	for _, b := range got {
		if !sent[frameHash(b)] {
			missing++
		}
	}
	t.Logf("%s: %d of %d payloads byte-identical to a frame the sender's worker produced", who, len(got)-missing, len(got))
	if missing > 0 || len(got) == 0 {
		t.Errorf("%s: %d of %d payloads differ from every frame the sender produced", who, missing, len(got))
	}
}

// TestBrowserE2EECascade: a meeting over two nodes (cluster secret, raft,
// gossip, the relay on loopback), Alice's page on the first, Bob's page and
// a pion participant on the second, one passphrase: Bob decodes Alice's
// video and audio, which crossed the relay; the pion participant's copies
// of Alice's frames verify with the derived key and are byte-identical to
// what Alice's worker produced, and her tracks arrive marked E2EE.
func TestBrowserE2EECascade(t *testing.T) {
	if !inNamespace(t, "TestBrowserE2EECascade") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)
	nodes := startTwoNodes(t, bin)

	const pass = "cascade passphrase"
	room := roomname.New()
	path := "/" + url.PathEscape(room) + "?prejoin=0&probe=0&e2eeprobe=1#e2ee=" + url.QueryEscape(pass)
	alice := newBrowser(t, chromium, "alice", true)
	bob := newBrowser(t, chromium, "bob", true)
	alice.navigate(t, nodes[0].URL+path+"&name=Alice")
	aliceID := waitFor(t, alice, "joined on node-eu", 60*time.Second, `window.meshmeet.joined && window.meshmeet.e2ee.active ? window.meshmeet.participant : ''`,
		func(id string) bool { return id != "" })
	bob.navigate(t, nodes[1].URL+path+"&name=Bob")
	waitFor(t, bob, "joined on node-us", 60*time.Second, `window.meshmeet.joined && window.meshmeet.e2ee.active`,
		func(j bool) bool { return j })
	sniff := newSniffer(t, nodes[1].URL, room)

	st := waitFor(t, bob, "Alice's audio and video decrypted across the relay", 120*time.Second, `window.meshmeet.e2ee`,
		func(s e2eeState) bool {
			n := 0
			for _, tr := range s.Stats.Tracks {
				if tr.Participant == aliceID && tr.Decrypted > 50 {
					n++
				}
			}
			return n >= 2
		})
	dec, fail := st.perParticipant()
	t.Logf("bob on node-us: decrypted %d of Alice's frames, %d failed", dec[aliceID], fail[aliceID])
	if fail[aliceID] > dec[aliceID]/100 {
		t.Errorf("bob: %d of Alice's frames failed to decrypt across the relay", fail[aliceID])
	}
	waitFor(t, bob, "Alice's video decoded", 60*time.Second, mediaExpr, func(s mediaStats) bool { return s.FramesDecoded > 30 })
	marked := waitFor(t, bob, "Alice's tracks marked E2EE", 10*time.Second,
		`window.meshmeet.tracks.filter((t) => t.participant === '`+aliceID+`').map((t) => !!t.e2ee)`,
		func(m []bool) bool { return len(m) >= 2 })
	for _, m := range marked {
		if !m {
			t.Errorf("a track of Alice reached node-us without the E2EE mark: %v", marked)
		}
	}

	var video, audio [][]byte
	deadline := time.Now().Add(60 * time.Second)
	for {
		video, audio = sniff.frames(aliceID)
		if len(video) >= 60 && len(audio) >= 60 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(video) < 60 || len(audio) < 60 {
		t.Fatalf("pion client on node-us received %d video frames and %d audio packets of Alice, want 60 each", len(video), len(audio))
	}
	aead := senderAEAD(t, pass, room, aliceID)
	bad := 0
	for _, f := range video {
		if _, err := openFrame(aead, f, vp8Clear(f)); err != nil {
			bad++
		}
	}
	for _, p := range audio {
		if _, err := openFrame(aead, p, 1); err != nil {
			bad++
		}
	}
	sniff.mu.Lock()
	odd, padding := sniff.odd, sniff.padding
	sniff.mu.Unlock()
	t.Logf("pion client on node-us: %d video frames and %d audio packets of Alice, %d do not verify; %d padding-only packets", len(video), len(audio), bad, padding)
	if odd != 0 {
		t.Errorf("pion client on node-us received %d packets that are neither frame pieces nor padding: a bridge or the relay originated packets", odd)
	}
	if bad > 0 {
		t.Errorf("%d of Alice's payloads do not verify after the relay", bad)
	}
	rx := waitFor(t, bob, "Bob's probe", 10*time.Second, probeExpr, func(p *probe) bool { return p != nil && len(p.RX) > 0 })
	tx := waitFor(t, alice, "Alice's probe", 10*time.Second, probeExpr, func(p *probe) bool { return p != nil && len(p.TX) > 0 })
	sent := map[string]bool{}
	for _, h := range tx.TX {
		sent[h] = true
	}
	checkIdentical(t, "pion client on node-us", sent, append(video[max(0, len(video)-100):], audio[max(0, len(audio)-100):]...))
	missing := 0
	recent := rx.RX[max(0, len(rx.RX)-300):]
	for _, h := range recent {
		if !sent[h] {
			missing++
		}
	}
	t.Logf("bob on node-us: %d of the last %d encrypted frames received are byte-identical to frames Alice sent on node-eu", len(recent)-missing, len(recent))
	if missing > 0 || len(recent) < 100 {
		t.Errorf("bob: %d of %d received frames differ from every frame Alice sent", missing, len(recent))
	}
	for _, b := range []*browser{alice, bob} {
		b.checkConsole(t)
	}
}

// startTwoNodes runs a two-node cluster (regions eu and us: cluster
// secret, raft voters, gossip join, the relay on loopback).
func startTwoNodes(t *testing.T, bin string) []*server {
	t.Helper()
	nodes, _ := startCluster(t, bin, regionNodes("eu", "us"))
	return nodes
}

// managedState is window.meshmeet.e2ee with managed keys.
type managedState struct {
	e2eeState
	Managed *struct {
		Index    int               `json:"index"`
		SAS      map[string]string `json:"sas"`
		Verified []string          `json:"verified"`
	} `json:"managed"`
}

// counts of a page: frames of sender decrypted and failed.
func (s managedState) of(sender string) (decrypted, failed int) {
	d, f := s.perParticipant()
	return d[sender], f[sender]
}

// TestBrowserE2EEManaged: managed keys, no passphrase, over two nodes.
// Alice (node-eu) and Bob (node-us) exchange sender keys over ECDH
// channels whose blobs the servers relay, across the relay between the
// bridges; each decrypts the other's audio and video, and both show the
// same four emoji for their pair. When Carol joins (node-eu) both ratchet
// their keys (the key index moves on) and Carol decrypts them, while they
// keep decrypting each other; when Carol leaves both rotate to new keys
// and keep decrypting each other.
func TestBrowserE2EEManaged(t *testing.T) {
	if !inNamespace(t, "TestBrowserE2EEManaged") {
		return
	}
	bin := os.Getenv(envServer)
	chromium := os.Getenv(envChromium)
	nodes := startTwoNodes(t, bin)
	room := roomname.New()
	path := "/" + url.PathEscape(room) + "?prejoin=0&probe=0#e2ee-managed=1"
	alice := newBrowser(t, chromium, "alice", true)
	bob := newBrowser(t, chromium, "bob", true)
	carol := newBrowser(t, chromium, "carol", true)
	ids := map[*browser]string{}
	join := func(b *browser, n *server, name string) {
		b.navigate(t, n.URL+path+"&name="+name)
		ids[b] = waitFor(t, b, "joined with managed keys", 60*time.Second,
			`window.meshmeet.joined && window.meshmeet.e2ee.active && window.meshmeet.e2ee.managed ? window.meshmeet.participant : ''`,
			func(id string) bool { return id != "" })
	}
	state := func(b *browser) managedState {
		return waitFor(t, b, "E2EE state", 10*time.Second, `window.meshmeet.e2ee`, func(managedState) bool { return true })
	}
	// decrypting waits until b decrypts sender's frames again and again
	// with no new failure: returns b's counts then.
	decrypting := func(b, sender *browser, what string) managedState {
		t.Helper()
		var last managedState
		lastFail := -1
		stable := 0
		logged := time.Now()
		waitFor(t, b, what, 90*time.Second, `window.meshmeet.e2ee`, func(s managedState) bool {
			if time.Since(logged) > 15*time.Second {
				logged = time.Now()
				t.Logf("%s: still waiting (%s): tracks %+v, keys %v, own index %d", b.name, what, s.Stats.Tracks, s.Stats.Keys, s.Managed.Index)
			}
			d, f := s.of(ids[sender])
			if d > 0 && f == lastFail {
				stable++
			} else {
				stable = 0
			}
			lastFail = f
			last = s
			return stable >= 8 && d > 50 // two seconds without a failure
		})
		return last
	}

	join(alice, nodes[0], "Alice")
	join(bob, nodes[1], "Bob")
	for _, p := range [][2]*browser{{alice, bob}, {bob, alice}} {
		s := decrypting(p[0], p[1], "the other's frames decrypted with exchanged keys, across the relay")
		d, f := s.of(ids[p[1]])
		t.Logf("%s: decrypts %s's frames (%d, %d failed before the keys arrived); own key index %d", p[0].name, p[1].name, d, f, s.Managed.Index)
	}
	waitFor(t, bob, "Alice's video decoded", 60*time.Second, mediaExpr, func(s mediaStats) bool { return s.FramesDecoded > 30 && s.AudioSamples > 0 })
	sa, sb := state(alice), state(bob)
	if sa.Managed.SAS[ids[bob]] == "" || sa.Managed.SAS[ids[bob]] != sb.Managed.SAS[ids[alice]] {
		t.Errorf("emoji differ: Alice shows %q for Bob, Bob shows %q for Alice", sa.Managed.SAS[ids[bob]], sb.Managed.SAS[ids[alice]])
	}
	t.Logf("Alice and Bob compare %s", sa.Managed.SAS[ids[bob]])
	// Alice confirms the emoji in the security dialog: Bob's tile says verified.
	alice.do(t, chromedp.Click(chromedp.ID("btn-security")))
	alice.do(t, chromedp.Click(chromedp.CSS(`#e2ee-sas li[data-participant="`+ids[bob]+`"] input`)))
	alice.do(t, chromedp.Click(chromedp.ID("security-close")))
	waitFor(t, alice, "Bob's tile marked verified", 10*time.Second,
		`[...document.querySelectorAll('#tiles .tile')].filter((el) => el.dataset.participant === '`+ids[bob]+`').map((el) => el.dataset.e2ee + ':' + el.querySelector('.tile-e2ee').textContent)`,
		func(s []string) bool { return len(s) > 0 && s[0] == "verified:E2EE · verified" })

	// Carol joins: Alice and Bob ratchet; Carol reads them, they each other.
	ia, ib := sa.Managed.Index, sb.Managed.Index
	join(carol, nodes[0], "Carol")
	for _, b := range []*browser{alice, bob} {
		old := map[*browser]int{alice: ia, bob: ib}[b]
		waitFor(t, b, "own key ratcheted on Carol's join", 30*time.Second, `window.meshmeet.e2ee.managed.index`,
			func(i int) bool { return i == (old+1)&0xff })
	}
	for _, p := range [][2]*browser{{carol, alice}, {carol, bob}} {
		decrypting(p[0], p[1], "Carol decrypts "+p[1].name+"'s ratcheted key")
	}
	before := state(bob)
	d0, _ := before.of(ids[alice])
	s := decrypting(bob, alice, "Bob still decrypts Alice after her ratchet")
	if d, _ := s.of(ids[alice]); d < d0+50 {
		t.Errorf("bob: %d frames of Alice decrypted after the ratchet, want 50 more than %d", d, d0)
	}

	// Carol leaves: Alice and Bob rotate to new random keys.
	sa, sb = state(alice), state(bob)
	carol.navigate(t, "about:blank")
	for _, p := range []struct {
		b   *browser
		old int
	}{{alice, sa.Managed.Index}, {bob, sb.Managed.Index}} {
		waitFor(t, p.b, "own key rotated on Carol's leave", 30*time.Second, `window.meshmeet.e2ee.managed.index`,
			func(i int) bool { return i == (p.old+1)&0xff })
	}
	time.Sleep(2 * time.Second) // the rotation takes effect after a second
	for _, p := range [][2]*browser{{alice, bob}, {bob, alice}} {
		before := state(p[0])
		d0, _ := before.of(ids[p[1]])
		s := decrypting(p[0], p[1], "the other's rotated key decrypts")
		d, f := s.of(ids[p[1]])
		t.Logf("%s: after the rotation decrypts %s's frames (%d, was %d; %d failed in all)", p[0].name, p[1].name, d, d0, f)
		if d < d0+50 {
			t.Errorf("%s: %d frames of %s decrypted after the rotation, want 50 more than %d", p[0].name, d, p[1].name, d0)
		}
	}
	for _, b := range []*browser{alice, bob} {
		b.checkConsole(t)
	}
}
