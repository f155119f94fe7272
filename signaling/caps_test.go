package signaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/meshmeet/meshmeet/mesh"
	"github.com/meshmeet/meshmeet/signaling"
	"github.com/meshmeet/meshmeet/signaling/wire"
)

// slowDirectory is the real LocalDirectory behind the latency of a raft
// round trip, which is where concurrent joins overtake each other.
type slowDirectory struct {
	*mesh.LocalDirectory
	delay time.Duration
}

func (d slowDirectory) Join(ctx context.Context, key mesh.RoomKey, bridge string) (mesh.Room, bool, error) {
	select {
	case <-time.After(d.delay):
	case <-ctx.Done():
		return mesh.Room{}, false, ctx.Err()
	}
	return d.LocalDirectory.Join(ctx, key, bridge)
}

// rawJoin opens a WebSocket, sends join and returns the socket and the
// first answer's type and error code. The socket stays open.
func rawJoin(ctx context.Context, n *node, room string) (*websocket.Conn, wire.Type, string, error) {
	return rawJoinFrom(ctx, n, "", room)
}

// rawJoinFrom is rawJoin from the local address ip ("" for any).
func rawJoinFrom(ctx context.Context, n *node, ip, room string) (*websocket.Conn, wire.Type, string, error) {
	ws, err := dialFrom(ctx, n, ip)
	if err != nil {
		return nil, "", "", err
	}
	b, _ := json.Marshal(&wire.Message{Type: wire.TypeJoin, Version: wire.Version, Room: room})
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		ws.CloseNow()
		return nil, "", "", err
	}
	typ, code, err := readType(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, "", "", err
	}
	return ws, typ, code, nil
}

// readType reads one message and returns its type and error code.
func readType(ctx context.Context, ws *websocket.Conn) (wire.Type, string, error) {
	_, data, err := ws.Read(ctx)
	if err != nil {
		return "", "", err
	}
	var m wire.Message
	if err := json.Unmarshal(data, &m); err != nil {
		return "", "", err
	}
	code := ""
	if m.Error != nil {
		code = m.Error.Code
	}
	return m.Type, code, nil
}

// joinStorm sends joins concurrently, room(i) naming the room of the i-th,
// and counts welcomes and "full" refusals. Sockets stay open until the
// test ends.
func joinStorm(t *testing.T, n *node, joins int, room func(i int) string) (welcomed, full int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		other []string
		start = make(chan struct{})
	)
	for i := range joins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ws, typ, code, err := rawJoin(ctx, n, room(i))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				other = append(other, err.Error())
			case typ == wire.TypeWelcome:
				welcomed++
			case code == wire.CodeFull:
				full++
			default:
				other = append(other, fmt.Sprintf("%s %s", typ, code))
			}
			if ws != nil {
				t.Cleanup(func() { ws.CloseNow() })
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("%d joins neither welcomed nor refused as full: %v", len(other), other)
	}
	return welcomed, full
}

// capsConfig sets small caps, a directory with a raft-like delay and
// per-source limits that let one loopback source send the whole storm.
func capsConfig(c *signaling.Config) {
	c.Directory = slowDirectory{LocalDirectory: mesh.NewLocalDirectory(), delay: 100 * time.Millisecond}
	c.MaxRoomParticipants = 10
	c.MaxParticipants = 10
	lenientSource(c)
}

// TestRoomCapIsAtomic: concurrent joins to one room admit exactly the cap.
func TestRoomCapIsAtomic(t *testing.T) {
	n := startNode(t, func(c *signaling.Config) {
		capsConfig(c)
		c.MaxParticipants = 1000
	})
	welcomed, full := joinStorm(t, n, 50, func(int) string { return "one room" })
	if welcomed != 10 || full != 40 {
		t.Fatalf("50 concurrent joins to a room capped at 10: %d welcomed, %d full", welcomed, full)
	}
	if st := n.Srv.Stats(); st.Participants != 10 {
		t.Fatalf("node holds %d participants, want 10", st.Participants)
	}
}

// TestNodeCapIsAtomic: concurrent joins to many rooms admit exactly the
// node's cap, and the refused ones leave nothing in the directory.
func TestNodeCapIsAtomic(t *testing.T) {
	var dir *mesh.LocalDirectory
	n := startNode(t, func(c *signaling.Config) {
		capsConfig(c)
		dir = c.Directory.(slowDirectory).LocalDirectory
	})
	welcomed, full := joinStorm(t, n, 50, func(i int) string { return fmt.Sprintf("room %d", i) })
	if welcomed != 10 || full != 40 {
		t.Fatalf("50 concurrent joins to a node capped at 10: %d welcomed, %d full", welcomed, full)
	}
	if st := n.Srv.Stats(); st.Participants != 10 || st.Rooms != 10 {
		t.Fatalf("node holds %d participants in %d rooms, want 10 in 10", st.Participants, st.Rooms)
	}
	if rooms, _ := dir.Rooms(context.Background()); rooms != 10 {
		t.Fatalf("directory holds %d rooms, want 10", rooms)
	}
	if live := n.Srv.LiveRooms(); len(live) != 10 {
		t.Fatalf("LiveRooms lists %d rooms, want 10", len(live))
	}
}
