// Package e2e holds meshmeet's browser end-to-end tests: the real
// `meshmeet serve` binary and headless Chromium with fake camera and
// microphone, inside a network namespace that has only a loopback
// interface, so that neither the server nor the browser can reach any other
// host. TestBrowser covers the landing page, a two-person meeting (media,
// names, chat, mute, the active speaker) and the same meeting with
// ?turn=1, where both pages may use only TURN-relayed candidates and so reach
// the bridge through meshmeet's own TURN server.
// TestBrowserE2EE, TestBrowserE2EECascade and TestBrowserE2EEManaged
// cover end-to-end encryption (docs/e2ee.md): pages that decrypt each
// other, a wrong passphrase that decrypts nothing, a pion participant that
// checks the frames' GCM tags with keys derived in Go, byte-identical frames
// through one bridge and through two, managed keys with ratchet and
// rotation, and clear clients refused under --e2ee-required.
//
// The tests skip, saying why, where Chromium is missing or where they cannot
// make a network namespace (they need root on Linux). Run them with
//
//	go test ./e2e -v
//
// MESHMEET_CHROMIUM names the browser binary when it is not on PATH as
// chromium, chromium-browser or google-chrome. MESHMEET_E2E_SERVER names a
// meshmeet binary to test instead of building ./cmd/meshmeet.
package e2e
