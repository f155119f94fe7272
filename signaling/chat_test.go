package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// dialSmallBuffer opens a signaling WebSocket whose TCP receive buffer is
// small, so that a client that reads slowly backs up into the server's
// queue within seconds rather than into megabytes of kernel buffers.
func dialSmallBuffer(ctx context.Context, n *node) (*websocket.Conn, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		return c, nil
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial}}
	ws, _, err := websocket.Dial(ctx, wsURL(n), &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{wire.Subprotocol}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(wire.MaxFrameBytes)
	return ws, nil
}

func sendJoin(ctx context.Context, t *testing.T, ws *websocket.Conn, room string) {
	t.Helper()
	writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room})
	m, raw := readJSON(ctx, t, ws)
	if m.Type != wire.TypeWelcome {
		t.Fatalf("join: %s", raw)
	}
}

// TestSlowReaderKeepsSession: three participants chat as fast as the
// message rate allows while a fourth reads slowly. The room's chat budget
// refuses the excess, chat to the slow reader is dropped rather than
// queued without end, and the slow reader stays in the meeting.
func TestSlowReaderKeepsSession(t *testing.T) {
	n := startNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const room = "busy chat"

	slow, err := dialSmallBuffer(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	sendJoin(ctx, t, slow, room)

	// The slow reader reads one message every 200 ms until told to hurry.
	var (
		hurry    = make(chan struct{})
		pong     = make(chan struct{})
		slowDone = make(chan error, 1)
		chats    atomic.Int64
	)
	go func() {
		defer close(pong)
		for {
			_, data, err := slow.Read(ctx)
			if err != nil {
				slowDone <- err
				return
			}
			var m wire.Message
			json.Unmarshal(data, &m)
			switch {
			case m.Type == wire.TypeError && m.Error.Fatal:
				slowDone <- fmt.Errorf("fatal error %s: %s", m.Error.Code, m.Error.Message)
				return
			case m.Type == wire.TypeChat:
				chats.Add(1)
			case m.Type == wire.TypePong:
				slowDone <- nil
				return
			}
			select {
			case <-hurry:
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	// Three senders: a burst within the message rate, then 20 a second,
	// each message 2000 two-byte characters. They read everything.
	text := strings.Repeat("é", wire.MaxChatRunes)
	stop := make(chan struct{})
	var senders sync.WaitGroup
	senderErr := make(chan error, 3)
	for range 3 {
		ws, err := dialFrom(ctx, n, "")
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		sendJoin(ctx, t, ws, room)
		go func() {
			for {
				_, data, err := ws.Read(ctx)
				if err != nil {
					return
				}
				var m wire.Message
				json.Unmarshal(data, &m)
				if m.Type == wire.TypeError && m.Error.Fatal {
					senderErr <- fmt.Errorf("sender got fatal %s", m.Error.Code)
					return
				}
			}
		}()
		senders.Add(1)
		go func() {
			defer senders.Done()
			b, _ := json.Marshal(&wire.Message{Type: wire.TypeChat, Text: text})
			for range 50 {
				if ws.Write(ctx, websocket.MessageText, b) != nil {
					return
				}
			}
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if ws.Write(ctx, websocket.MessageText, b) != nil {
						return
					}
				}
			}
		}()
	}
	select {
	case err := <-slowDone:
		t.Fatalf("slow reader's session ended during the chat storm: %v", err)
	case err := <-senderErr:
		t.Fatal(err)
	case <-time.After(8 * time.Second):
	}
	close(stop)
	senders.Wait()

	// The slow reader is still in: its ping is answered.
	writeJSON(ctx, t, slow, &wire.Message{Type: wire.TypePing})
	close(hurry)
	select {
	case err := <-slowDone:
		if err != nil {
			t.Fatalf("slow reader: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("slow reader: no pong to its ping after the storm")
	}
	if chats.Load() == 0 {
		t.Fatal("the slow reader received no chat at all")
	}
	if st := n.Srv.Stats(); st.ChatRefused == 0 {
		t.Fatalf("no chat refused by the room's budget: %+v", st)
	}
}

// TestChatHistoryBounded: kept chat stays within the node's byte budget
// however many rooms fill theirs, and a late joiner still gets the history
// its room kept.
func TestChatHistoryBounded(t *testing.T) {
	const budget = 30000
	n := startNode(t, func(c *signaling.Config) { c.ChatHistoryBytes = budget })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	text := strings.Repeat("é", wire.MaxChatRunes-10) // about 4 KB

	for i := range 5 {
		ws := dialWS(ctx, t, n)
		sendJoin(ctx, t, ws, fmt.Sprintf("lonely room %d", i))
		for j := range 5 {
			writeJSON(ctx, t, ws, &wire.Message{Type: wire.TypeChat, Text: fmt.Sprintf("%d-%d %s", i, j, text)})
		}
		for got := 0; got < 5; {
			if m, raw := readJSON(ctx, t, ws); m.Type == wire.TypeChat {
				got++
			} else if m.Type == wire.TypeError {
				t.Fatalf("room %d: %s", i, raw)
			}
		}
	}
	st := n.Srv.Stats()
	if st.ChatHistoryBytes > budget || st.ChatHistoryBytes == 0 {
		t.Fatalf("rooms keep %d bytes of chat, budget %d", st.ChatHistoryBytes, budget)
	}

	late := dialWS(ctx, t, n)
	sendJoin(ctx, t, late, "lonely room 0")
	writeJSON(ctx, t, late, &wire.Message{Type: wire.TypePing})
	var history []string
	for {
		m, _ := readJSON(ctx, t, late)
		if m.Type == wire.TypePong {
			break
		}
		if m.Type == wire.TypeChat {
			history = append(history, m.Text[:3])
		}
	}
	if len(history) == 0 || history[len(history)-1] != "0-4" {
		t.Fatalf("late joiner's history = %v, want the room's messages up to the last", history)
	}
}
