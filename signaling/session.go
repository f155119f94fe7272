package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/meshmeet/meshmeet/signaling/wire"
)

const (
	// idleTimeout closes a WebSocket that sent nothing for this long; the
	// client pings every 10 s.
	idleTimeout = 45 * time.Second
	// writeTimeout bounds one WebSocket write.
	writeTimeout = 5 * time.Second
	// refuseTimeout bounds the write of a busy error to a socket that is
	// refused at once.
	refuseTimeout = time.Second
	// sendQueue bounds the messages waiting for a participant's socket.
	// Chat to a client is dropped past chatQueue; a client that falls
	// this far behind anyway is disconnected.
	sendQueue = 512
)

// handleWS upgrades to a WebSocket and runs one session on it.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	src, ok := sourceOf(r, s.cfg.TrustedProxies)
	if !ok {
		http.Error(w, "bad peer address", http.StatusBadRequest)
		return
	}
	busy := s.sources.connect(src)
	// Pages of the cluster's other nodes connect here after a redirect.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wire.Subprotocol}, OriginPatterns: s.clusterOrigins()})
	if err != nil {
		if busy == nil {
			s.sources.disconnect(src, true)
		}
		return // Accept wrote the HTTP error
	}
	if busy != nil {
		// Upgrade first so the client (a browser cannot read the status
		// of a refused upgrade) learns why; then drop the connection
		// without a closing handshake. Refused sockets are not counted,
		// so each may cost this goroutine only briefly.
		werr := errorMessage(busy)
		werr.Fatal = true
		ctx, cancel := context.WithTimeout(context.Background(), refuseTimeout)
		writeNow(ctx, ws, &wire.Message{Type: wire.TypeError, Error: werr})
		cancel()
		ws.CloseNow()
		return
	}
	c := &conn{ws: ws, src: src, unjoined: true, done: make(chan struct{}), secure: securePage(r)}
	defer func() { s.sources.disconnect(src, c.unjoined) }()
	if ws.Subprotocol() != wire.Subprotocol {
		ws.Close(websocket.StatusPolicyViolation, "subprotocol "+wire.Subprotocol+" required")
		return
	}
	ws.SetReadLimit(wire.MaxFrameBytes)
	s.conns.Add(1)
	defer s.conns.Done()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	s.serveConn(ctx, c)
}

// conn is one WebSocket of a participant. A participant keeps its media
// across a dropped socket and a resume on a new one.
type conn struct {
	ws   *websocket.Conn
	src  netip.Prefix  // static: the peer's source (limits.go)
	done chan struct{} // closed when the socket is finished
	once sync.Once

	// secure: the page (or client) reached this node over https, so it
	// can only be redirected to https URLs (place.go). Static.
	secure bool
	// unjoined is true until the first message arrives. Owned by the
	// goroutine of handleWS and serveConn.
	unjoined bool
	// movedID is the participant ID a checked resume from another node
	// keeps (resume.go); "" for a new participant. Owned like unjoined.
	movedID string
	// leaderless is set when this mover's authorize found no directory
	// leader and read the local copy instead (resume.go). Owned like
	// unjoined.
	leaderless bool
	// grant is what authorize allowed the join (auth.go). Owned like unjoined.
	grant grant
}

func (c *conn) close(code websocket.StatusCode, reason string) {
	c.once.Do(func() {
		close(c.done)
		c.ws.Close(code, reason)
	})
}

// writeNow writes one message directly, for answers before join and fatal
// errors.
func writeNow(ctx context.Context, ws *websocket.Conn, m *wire.Message) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, data)
}

// serveConn reads messages until the socket ends or the session fails.
func (s *Server) serveConn(ctx context.Context, c *conn) {
	ws := c.ws
	defer c.close(websocket.StatusNormalClosure, "")
	limiter := rate.NewLimiter(wire.RatePerSecond, wire.RateBurst)
	shared := s.sources.messages(c.src)
	var p *participant
	fatal := func(err error) {
		werr := errorMessage(err)
		werr.Fatal = true
		writeNow(ctx, ws, &wire.Message{Type: wire.TypeError, Error: werr})
		c.close(websocket.StatusPolicyViolation, werr.Code)
		if p != nil {
			s.leave(p, err)
		}
	}
	for {
		timeout := idleTimeout
		if p == nil {
			timeout = s.cfg.JoinTimeout
		}
		rctx, rcancel := context.WithTimeout(ctx, timeout)
		typ, data, err := ws.Read(rctx)
		rcancel()
		if err == nil && c.unjoined {
			c.unjoined = false
			s.sources.joined()
		}
		if err != nil {
			if ctx.Err() != nil && p != nil {
				return // shutdown: fail() already told the participant
			}
			if p != nil {
				s.socketClosed(p, c)
			}
			return
		}
		if !limiter.Allow() {
			fatal(errRateLimited)
			return
		}
		if s.sources.wait(ctx, shared) != nil {
			return // the socket ended (or the node stops) while waiting
		}
		if typ != websocket.MessageText {
			fatal(badMessage("binary frames are not part of the protocol"))
			return
		}
		m, err := wire.Decode(data)
		if err == nil {
			err = m.Validate()
		}
		if err != nil {
			fatal(err)
			return
		}
		if p == nil {
			if m.Type != wire.TypeJoin {
				fatal(errNotJoined)
				return
			}
			if err := s.place(ctx, c, m); err != nil { // place.go
				if !errors.Is(err, errPlacedElsewhere) {
					fatal(err)
				}
				return
			}
			if p, err = s.joinSession(ctx, c, m); err != nil {
				if errors.Is(err, errRedirected) {
					c.close(websocket.StatusNormalClosure, "redirected")
					return
				}
				fatal(err)
				return
			}
			continue
		}
		if err := s.handle(p, m); err != nil {
			if errors.Is(err, errLeft) {
				c.close(websocket.StatusNormalClosure, "left")
				return
			}
			var pe *wire.Error
			if errors.As(err, &pe) && (pe.Code == wire.CodeNegotiation || pe.Code == wire.CodeChatLimited) {
				p.send(&wire.Message{Type: wire.TypeError, Error: pe})
				continue
			}
			fatal(err)
			return
		}
	}
}

// writeLoop sends p's queued messages on c until c is finished.
func (s *Server) writeLoop(p *participant, c *conn) {
	for {
		select {
		case <-c.done:
			return
		case m := <-p.out:
			if m.Type == wire.TypeForwarding {
				if m = p.forwardingFor(c, m); m == nil { // forwarding.go
					continue
				}
			}
			data, err := json.Marshal(m)
			if err != nil {
				s.log.Error("encode message", "type", m.Type, "err", err)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			err = c.ws.Write(ctx, websocket.MessageText, data)
			cancel()
			if err != nil {
				c.close(websocket.StatusGoingAway, "write failed")
				return
			}
		}
	}
}

// handle applies one validated message from a joined participant.
func (s *Server) handle(p *participant, m *wire.Message) error {
	if err := p.awaitAdmission(m.Type); err != nil {
		return err // left the lobby
	}
	switch m.Type {
	case wire.TypeMuteParticipant, wire.TypeStopCamera, wire.TypeRemoveParticipant,
		wire.TypeEndMeeting, wire.TypeAdmit, wire.TypeDeny:
		return s.moderate(p, moderationAction[m.Type], m.Participant)
	case wire.TypeSetLobby:
		return s.setLobby(p, *m.Lobby)
	case wire.TypeSpeakerStats:
		p.room.speakerStats(p)
	case wire.TypeJoin:
		return badMessage("already joined")
	case wire.TypeLeave:
		s.leave(p, nil)
		return errLeft
	case wire.TypePing:
		p.send(&wire.Message{Type: wire.TypePong, TS: time.Now().UnixMilli()})
	case wire.TypeOffer:
		if m.PC != wire.PCPub {
			return negotiation("offers come from the client only on the pub PeerConnection")
		}
		answer, err := p.media.HandleOffer(m.SDP)
		if err != nil {
			p.log.Debug("offer refused", "reason", logReason(err), "sdp_bytes", len(m.SDP))
			return negotiation("offer refused")
		}
		p.send(&wire.Message{Type: wire.TypeAnswer, PC: wire.PCPub, SDP: answer})
	case wire.TypeAnswer:
		if m.PC != wire.PCSub {
			return negotiation("answers come from the client only on the sub PeerConnection")
		}
		if err := p.media.HandleAnswer(m.SDP); err != nil {
			p.log.Debug("answer refused", "reason", logReason(err), "sdp_bytes", len(m.SDP))
			return negotiation("answer refused")
		}
	case wire.TypeCandidate:
		if m.Candidate.Candidate == "" {
			return nil // end of candidates
		}
		if err := p.media.AddCandidate(pcOf(m.PC), candidateInit(m.Candidate)); err != nil {
			p.log.Debug("candidate refused", "reason", logReason(err), "candidate_bytes", len(m.Candidate.Candidate))
			return negotiation("candidate refused")
		}
	case wire.TypeChat:
		return p.room.chat(p, m.Text)
	case wire.TypeState:
		p.room.setMuted(p, *m.Muted)
	case wire.TypePrefs:
		p.media.SetMaxHeight(m.TrackID, m.MaxHeight)
		p.media.Pin(m.TrackID, m.Pin)
	case wire.TypeSetPassword:
		return s.setPassword(p, m.Password)
	case wire.TypeSetE2EE:
		return s.setE2EE(p, *m.E2EERequired)
	case wire.TypeE2EEKey:
		s.relayE2EEKey(p, m.Participant, m.Blob)
	}
	return nil
}
