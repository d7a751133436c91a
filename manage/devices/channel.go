package devices

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/trellis-sdwan/trellis/manage/store"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

// Close codes manage uses on the device channel (4000-4999 are the
// application's).
const (
	statusGoingAway    = websocket.StatusGoingAway
	StatusReplaced     = websocket.StatusCode(4001) // a newer connection of the same device took over
	StatusRevoked      = websocket.StatusCode(4002) // device deleted or credential replaced
	StatusTooSlow      = websocket.StatusCode(4003) // the device does not read fast enough
	StatusProtocol     = websocket.StatusCode(4004) // unsupported protocol version
	writeTimeout       = 10 * time.Second
	outboxSize         = 32
	maxErrorsPerMinute = 120
)

// conn is one device's live channel.
type conn struct {
	s        *Service
	ws       *websocket.Conn
	orgID    string
	deviceID string
	credHash string
	ip       string
	out      chan []byte
	done     chan struct{} // closed when the connection is to end
	doneOnce sync.Once
	closed   chan struct{} // closed when the websocket is closed

	closeCode   websocket.StatusCode
	closeReason string
	dead        atomic.Bool // peer stopped answering

	mu          sync.Mutex
	ready       bool // Hello received and answered
	approved    bool
	sentVersion string // last Config pushed on this connection
	applied     string // last version the edge reported applied
	desired     string // current desired version (approved devices)
	errs        int
	errsSince   time.Time
}

// close asks the writer to send what is queued, then close the websocket
// with code and reason (idempotent; the first reason wins).
func (c *conn) close(code websocket.StatusCode, reason string) {
	c.doneOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.done)
	})
}

// finish flushes the outbox and closes the websocket; the writer calls it.
func (c *conn) finish() {
	defer close(c.closed)
	if c.dead.Load() {
		_ = c.ws.CloseNow()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for flushing := true; flushing; {
		select {
		case b := <-c.out:
			if c.ws.Write(ctx, websocket.MessageText, b) != nil {
				flushing = false
			}
		default:
			flushing = false
		}
	}
	_ = c.ws.Close(c.closeCode, c.closeReason)
}

// send queues an envelope; a device whose outbox is full is too slow and
// is disconnected (it reconnects and catches up).
func (c *conn) send(typ, id string, body any) {
	env := devproto.Envelope{V: devproto.Version, Type: typ, ID: id, Time: c.s.now().UTC()}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.s.log.Error("encoding channel message", "type", typ, "err", err)
			return
		}
		env.Body = b
	}
	b, err := json.Marshal(env)
	if err != nil {
		c.s.log.Error("encoding channel envelope", "type", typ, "err", err)
		return
	}
	select {
	case <-c.done:
	case c.out <- b:
		c.s.metrics.out(typ)
	default:
		c.s.metrics.fail("outbox_full")
		c.s.log.Warn("device does not read its channel: disconnecting", "device", c.deviceID)
		c.close(StatusTooSlow, "outbox full: reconnect")
	}
}

func (c *conn) sendError(id, code, msg string, fatal bool) {
	c.s.metrics.fail(code)
	c.send(devproto.TypeError, id, devproto.ErrorMsg{Code: code, Message: msg, Fatal: fatal})
}

// writer sends queued messages and pings the device every heartbeat; a
// device that does not answer a ping within another heartbeat is dead.
func (c *conn) writer(ctx context.Context) {
	hb := c.s.cfg.Heartbeat
	t := time.NewTicker(hb)
	defer t.Stop()
	for {
		select {
		case <-c.done: // first: once closing, nothing else
			c.finish()
			return
		default:
		}
		select {
		case <-ctx.Done():
			c.close(statusGoingAway, "manage is shutting down")
		case <-c.done:
			c.finish()
			return
		case b := <-c.out:
			wctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
			err := c.ws.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				c.s.metrics.fail("write")
				c.dead.Store(true)
				c.close(websocket.StatusInternalError, "write failed")
			}
		case <-t.C:
			pctx, cancel := context.WithTimeout(context.Background(), hb)
			err := c.ws.Ping(pctx)
			cancel()
			if err != nil {
				c.s.metrics.fail("heartbeat")
				c.s.log.Info("device missed its heartbeat: disconnecting", "device", c.deviceID, "err", err)
				c.dead.Store(true) // no close handshake with a dead peer
				c.close(websocket.StatusPolicyViolation, "heartbeat missed")
			}
		}
	}
}

// registry holds this replica's connections, one per device.
type registry struct {
	mu    sync.Mutex
	conns map[string]*conn
	// stripes serialise connect and disconnect of one device with their
	// store writes, so an old connection's "disconnected" never lands after
	// the new one's "connected".
	stripes [256]sync.Mutex
}

func newRegistry() *registry { return &registry{conns: map[string]*conn{}} }

func (r *registry) stripe(deviceID string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(deviceID))
	return &r.stripes[h.Sum32()%uint32(len(r.stripes))]
}

// attach makes c the device's connection and returns the one it replaces.
func (r *registry) attach(c *conn) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.conns[c.deviceID]
	r.conns[c.deviceID] = c
	return old
}

// detach removes c if it is still the device's connection.
func (r *registry) detach(c *conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[c.deviceID] != c {
		return false
	}
	delete(r.conns, c.deviceID)
	return true
}

func (r *registry) get(deviceID string) *conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns[deviceID]
}

func (r *registry) all() []*conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*conn, 0, len(r.conns))
	for _, c := range r.conns {
		out = append(out, c)
	}
	return out
}

// counts returns the connected devices and those of them in sync.
func (r *registry) counts() (connected, inSync int) {
	for _, c := range r.all() {
		connected++
		c.mu.Lock()
		if c.approved && c.desired != "" && c.applied == c.desired {
			inSync++
		}
		c.mu.Unlock()
	}
	return connected, inSync
}

func (r *registry) closeAll(code websocket.StatusCode, reason string) {
	for _, c := range r.all() {
		c.close(code, reason)
	}
}

// Connected reports whether a device has a channel on this replica.
func (s *Service) Connected(deviceID string) bool { return s.conns.get(deviceID) != nil }

// ChannelHandler serves GET devproto.PathChannel (websocket upgrade).
func (s *Service) ChannelHandler() http.Handler {
	return http.HandlerFunc(s.serveChannel)
}

func (s *Service) serveChannel(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		writeError(w, &httpError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "manage is shutting down: reconnect later"})
		return
	}
	defer s.active.Done()
	d, hash, herr := s.deviceByCredential(r.Context(), r)
	if herr != nil {
		s.metrics.fail("auth")
		writeError(w, herr)
		return
	}
	// The server's read/write timeouts were meant for requests; a channel
	// lives for days.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		s.metrics.fail("upgrade")
		s.log.Info("device channel upgrade failed", "device", d.ID, "err", err)
		return
	}
	ws.SetReadLimit(devproto.MaxFrame)
	c := &conn{s: s, ws: ws, orgID: d.OrgID, deviceID: d.ID, credHash: hash, ip: clientIP(r),
		out: make(chan []byte, outboxSize), done: make(chan struct{}), closed: make(chan struct{}), approved: d.Approval == store.ApprovalApproved,
		desired: d.DesiredVersion, applied: d.AppliedVersion}
	// Detached from the request: the server's shutdown ends channels through
	// Service.Run, not by cancelling requests.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()

	if err := s.connected(ctx, c); err != nil {
		s.log.Error("device connect", "device", d.ID, "err", err)
		_ = ws.Close(websocket.StatusInternalError, "internal error")
		return
	}
	go c.writer(ctx)
	s.readLoop(ctx, c)
	s.disconnected(c)
}

// connected registers c, replacing an older connection of the device.
func (s *Service) connected(ctx context.Context, c *conn) error {
	mu := s.conns.stripe(c.deviceID)
	mu.Lock()
	defer mu.Unlock()
	if old := s.conns.attach(c); old != nil {
		s.log.Info("device connected again: closing its older connection", "device", c.deviceID, "old_ip", old.ip, "ip", c.ip)
		old.close(StatusReplaced, "replaced by a newer connection of this device")
	}
	if err := s.st.SetDeviceConnection(ctx, c.orgID, c.deviceID, store.ConnConnected, s.now()); err != nil {
		s.conns.detach(c)
		return err
	}
	// A job that was running on an earlier connection lost its result.
	if n, err := s.st.FailRunningJobs(ctx, c.orgID, c.deviceID, "the device disconnected before reporting the result", s.now()); err != nil {
		s.log.Warn("failing jobs of a lost connection", "device", c.deviceID, "err", err)
	} else if n > 0 {
		s.log.Info("jobs lost with an earlier connection marked failed", "device", c.deviceID, "count", n)
	}
	s.log.Info("device connected", "org", c.orgID, "device", c.deviceID, "ip", c.ip, "approved", c.approved)
	return nil
}

func (s *Service) disconnected(c *conn) {
	c.close(websocket.StatusNormalClosure, "")
	<-c.closed
	mu := s.conns.stripe(c.deviceID)
	mu.Lock()
	defer mu.Unlock()
	if !s.conns.detach(c) {
		return // replaced: the new connection owns the state
	}
	if s.single && s.shuttingDown() {
		return // Run marks every device disconnected at once
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.st.SetDeviceConnection(ctx, c.orgID, c.deviceID, store.ConnDisconnected, s.now())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("recording device disconnect", "device", c.deviceID, "err", err)
	}
	s.log.Info("device disconnected", "device", c.deviceID)
}
