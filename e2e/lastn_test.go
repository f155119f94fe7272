package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/meshmeet/meshmeet/bench/client"
	"github.com/meshmeet/meshmeet/signaling/roomname"
)

// TestBrowserLastNPaused: on a node with --last-n 1 and two silent video
// publishers (Go clients), a page shows one of them and, for the other,
// the person with the "video paused" note instead of a frozen frame;
// pinning that tile takes the note away and its media flows again. A third
// silent publisher joining then leaves exactly one tile paused: the page
// learns of its video after the latest forwarding message and counts it as
// forwarded only until the next one (which lists just the videos last-N
// forwards, never the paused ones).
func TestBrowserLastNPaused(t *testing.T) {
	if !inNamespace(t, "TestBrowserLastNPaused") {
		return
	}
	srv := startServer(t, os.Getenv(envServer), "--last-n=1")
	room := roomname.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	silent := func(tag uint32) {
		layers := []client.SynthLayer{{RID: "q", Width: 320, Height: 180, Bitrate: 150_000}}
		video, err := client.NewSimulcastVideo("v", fmt.Sprintf("s%d", tag), layers)
		if err != nil {
			t.Fatal(err)
		}
		src := &client.Synth{Sender: tag}
		jctx, jcancel := context.WithTimeout(ctx, 30*time.Second)
		c, err := client.Join(jctx, srv.URL, room, client.Options{Name: fmt.Sprintf("Silent %d", tag), Simulcast: video, OnKeyframeRequest: src.RequestKeyframe})
		jcancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		src.Ext = c.Ext
		go src.RunSimulcast(ctx, video, client.VideoOptions{Layers: layers})
		go func() { // drain the events
			for range c.Events() {
			}
		}()
	}
	silent(1)
	silent(2)

	carol := newBrowser(t, os.Getenv(envChromium), "carol", false)
	carol.navigate(t, srv.URL+"/"+url.PathEscape(room)+"?prejoin=0#name=Carol")
	waitFor(t, carol, "Carol joined", 30*time.Second, `window.meshmeet.joined`, func(b bool) bool { return b })
	const state = `(() => {
  const tiles = [...document.querySelectorAll('#tiles .tile[data-track]')];
  return tiles.map((el) => (el.querySelector('.tile-paused').hidden ? 'shown' : 'paused') +
    (el.querySelector('video').hidden ? '/avatar' : '/video')).sort().join(' ');
})()`
	// bytes gives the bytes received of the video of the tile that is
	// (or was, once pinned) paused. The synthetic VP8 does not decode, so
	// what arrives is measured, not what renders.
	const bytes = `(async () => {
  const el = document.querySelector('#tiles .tile[data-paused="1"]') || document.querySelector('#tiles .tile.pinned');
  if (!el || !window.meshmeet.sub) return -1;
  let n = 0;
  (await window.meshmeet.sub.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.trackIdentifier === el.dataset.track) n += s.bytesReceived; });
  return n;
})()`
	waitFor(t, carol, "one video shown, one paused with the note", 60*time.Second, state, func(s string) bool { return s == "paused/avatar shown/video" })
	label := waitFor(t, carol, "the paused tile's label", 5*time.Second,
		`document.querySelector('#tiles .tile[data-paused="1"]').getAttribute('aria-label')`, func(string) bool { return true })
	t.Logf("paused tile: %q", label)
	before := waitFor(t, carol, "bytes of the paused video", 5*time.Second, bytes, func(n float64) bool { return n >= 0 })
	time.Sleep(2 * time.Second)
	if after := waitFor(t, carol, "bytes of the paused video", 5*time.Second, bytes, func(n float64) bool { return n >= 0 }); after > before+2000 {
		t.Fatalf("the paused video received %v bytes in 2 s", after-before)
	}
	carol.do(t, chromedp.Evaluate[chromedp.Void](`document.querySelector('#tiles .tile[data-paused="1"] .tile-pin').click()`))
	waitFor(t, carol, "both videos shown after the pin", 30*time.Second, state, func(s string) bool { return s == "shown/video shown/video" })
	waitFor(t, carol, "the pinned video's media flowing", 30*time.Second, bytes, func(n float64) bool { return n > before+20000 })
	// A third silent publisher: last-N forwards the first in ID order and
	// the pinned one, so one of the three tiles is paused, whichever.
	silent(3)
	waitFor(t, carol, "three tiles, one paused", 60*time.Second, state, func(s string) bool { return s == "paused/avatar shown/video shown/video" })
	carol.checkConsole(t)
}
