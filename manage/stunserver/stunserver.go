// Package stunserver is manage's STUN server (RFC 5389 Binding): edges ask
// it, from their tunnel socket, which public address and port their WAN's
// NAT maps that socket to, and whether the NAT filters by port.
//
// It listens on two UDP ports of one address (by default 3478 and 3479).
// A Binding request is answered with XOR-MAPPED-ADDRESS (and MAPPED-ADDRESS
// for RFC 3489 clients), RESPONSE-ORIGIN and SOFTWARE, from the port it
// arrived on; with the RFC 5780 CHANGE-REQUEST "change port" flag set, it
// is answered from the other port, which tells a client whether its NAT
// lets in packets from a port it never sent to (a filtering test). "Change
// IP" cannot be honoured with one address and is answered with error 420
// (the client learns that test is not available). Anything else — non-STUN
// datagrams, malformed messages, responses, indications, other methods — is
// dropped without an answer, and each source address is rate limited so
// the server cannot be used to amplify traffic at someone else.
package stunserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/pion/stun/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"
)

// Defaults of Config.
const (
	DefaultPort     = 3478
	DefaultSoftware = "trellis-manage"
	// DefaultRate and DefaultBurst bound the requests per second answered
	// for one source address (many edges behind one CGNAT address share
	// it: an edge asks a few times per WAN and check).
	DefaultRate  = 50
	DefaultBurst = 200
	// DefaultMaxSources bounds the rate limiter's memory.
	DefaultMaxSources = 65536
)

// ChangePort is the "change port" flag of CHANGE-REQUEST (RFC 5780 7.2);
// ChangeIP is its "change IP" flag.
const (
	ChangeIP   = 0x04
	ChangePort = 0x02
)

// Config of a Server.
type Config struct {
	// Listen is the first port's address, host:port (":3478" when empty);
	// the second port is the next one. Port 0 picks two free adjacent ports.
	Listen string
	// Software is sent in the SOFTWARE attribute (DefaultSoftware if "").
	Software string
	Logger   *slog.Logger
	// Registerer receives the metrics (none if nil).
	Registerer prometheus.Registerer
	// Rate (answers per second) and Burst per source address; MaxSources
	// bounds how many sources are tracked (new sources beyond it are
	// refused until old ones age out). Defaults above when 0.
	Rate       float64
	Burst      int
	MaxSources int
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Server is a running pair of STUN sockets.
type Server struct {
	cfg      Config
	log      *slog.Logger
	conns    [2]*net.UDPConn
	pconns   [2]*ipv4.PacketConn // nil unless IPv4 with packet info
	addrs    [2]netip.AddrPort
	software stun.Software
	limiter  *limiter
	metrics  *metrics
	closeMu  sync.Once
}

// New binds both ports; Run serves them.
func New(cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = ":" + strconv.Itoa(DefaultPort)
	}
	if cfg.Software == "" {
		cfg.Software = DefaultSoftware
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("STUN listen address %q: want host:port such as :3478: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65534 {
		return nil, fmt.Errorf("STUN listen address %q: the port must be 0 to 65534 (the server also uses the next port)", cfg.Listen)
	}
	network := "udp4"
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() && !ip.Is4In6() {
		network = "udp6"
	} else if host != "" && err != nil {
		network = "udp" // a name: whatever it resolves to
	}
	s := &Server{cfg: cfg, log: cfg.Logger, software: stun.NewSoftware(cfg.Software),
		limiter: newLimiter(cfg.Rate, cfg.Burst, cfg.MaxSources), metrics: newMetrics(cfg.Registerer)}
	if err := s.bind(network, host, port); err != nil {
		return nil, err
	}
	return s, nil
}

// bind opens the two sockets; with port 0 it retries until two adjacent
// free ports are found.
func (s *Server) bind(network, host string, port int) error {
	for attempt := 0; ; attempt++ {
		first, err := net.ListenPacket(network, net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("STUN: listening on %s: %w", net.JoinHostPort(host, strconv.Itoa(port)), err)
		}
		p1 := first.LocalAddr().(*net.UDPAddr).Port
		second, err := net.ListenPacket(network, net.JoinHostPort(host, strconv.Itoa(p1+1)))
		if err != nil {
			first.Close()
			if port == 0 && attempt < 20 && p1 < 65535 {
				continue
			}
			return fmt.Errorf("STUN: listening on the second port %s: %w", net.JoinHostPort(host, strconv.Itoa(p1+1)), err)
		}
		s.conns = [2]*net.UDPConn{first.(*net.UDPConn), second.(*net.UDPConn)}
		for i, c := range s.conns {
			s.addrs[i] = c.LocalAddr().(*net.UDPAddr).AddrPort()
			if network == "udp4" {
				// Answer from the address the request was sent to (a
				// multi-homed manage listening on every address).
				pc := ipv4.NewPacketConn(c)
				if err := pc.SetControlMessage(ipv4.FlagDst, true); err == nil {
					s.pconns[i] = pc
				}
			}
		}
		return nil
	}
}

// Addrs are the two bound addresses.
func (s *Server) Addrs() [2]netip.AddrPort { return s.addrs }

// Run serves until ctx ends, then closes the sockets.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for i := range s.conns {
		wg.Add(1)
		go func() { defer wg.Done(); s.serve(i) }()
	}
	s.log.Info("serving STUN", "addr", s.addrs[0].String(), "change_port", s.addrs[1].String())
	<-ctx.Done()
	s.Close()
	wg.Wait()
	return nil
}

// Close closes the sockets (Run returns once its readers end).
func (s *Server) Close() {
	s.closeMu.Do(func() {
		for _, c := range s.conns {
			if c != nil {
				c.Close()
			}
		}
	})
}

const maxDatagram = 1500

func (s *Server) serve(i int) {
	buf := make([]byte, maxDatagram+1)
	for {
		var (
			n    int
			from netip.AddrPort
			dst  netip.Addr
			err  error
		)
		if pc := s.pconns[i]; pc != nil {
			var cm *ipv4.ControlMessage
			var src net.Addr
			n, cm, src, err = pc.ReadFrom(buf)
			if ua, ok := src.(*net.UDPAddr); ok {
				from = ua.AddrPort()
			}
			if cm != nil {
				if a, ok := netip.AddrFromSlice(cm.Dst); ok {
					dst = a.Unmap()
				}
			}
		} else {
			n, from, err = s.conns[i].ReadFromUDPAddrPort(buf)
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Debug("STUN read", "err", err)
			continue
		}
		if n > maxDatagram {
			s.metrics.drop("oversize")
			continue
		}
		s.metrics.requests.Inc()
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if !s.limiter.allow(from.Addr(), s.cfg.Now()) {
			s.metrics.drop("rate_limited")
			continue
		}
		local := s.addrs[i]
		if dst.IsValid() && !dst.IsUnspecified() {
			local = netip.AddrPortFrom(dst, local.Port())
		}
		other := netip.AddrPortFrom(local.Addr(), s.addrs[1-i].Port())
		res, changed, reason := Answer(buf[:n], from, local, other, s.software)
		if res == nil {
			s.metrics.drop(reason)
			continue
		}
		out := i
		if changed {
			out = 1 - i
		}
		if err := s.write(out, res, from, dst); err != nil {
			s.log.Debug("STUN write", "to", from.String(), "err", err)
			s.metrics.drop("write_error")
			continue
		}
		s.metrics.answer(reason)
	}
}

func (s *Server) write(i int, b []byte, to netip.AddrPort, src netip.Addr) error {
	if pc := s.pconns[i]; pc != nil && src.IsValid() && !src.IsUnspecified() {
		_, err := pc.WriteTo(b, &ipv4.ControlMessage{Src: src.AsSlice()}, net.UDPAddrFromAddrPort(to))
		return err
	}
	_, err := s.conns[i].WriteToUDPAddrPort(b, to)
	return err
}

// Answer outcomes (the reason label of the metrics).
const (
	ResultBinding      = "binding"      // answered from the port it came to
	ResultChangedPort  = "changed_port" // answered from the other port
	ResultError        = "error"        // error response (420)
	DropNotSTUN        = "not_stun"     // not a STUN message
	DropMalformed      = "malformed"    // a STUN header whose body does not parse
	DropNotRequest     = "not_request"  // response or indication: never answered
	DropUnknownMethod  = "unknown_method"
	DropBadFingerprint = "bad_fingerprint"
)

// knownRequired are the comprehension-required attributes a Binding
// request may carry without a 420: CHANGE-REQUEST is honoured, the rest
// are understood and need nothing (this server asks no credentials).
var knownRequired = map[stun.AttrType]bool{
	stun.AttrChangeRequest: true, stun.AttrPadding: true, stun.AttrUsername: true,
	stun.AttrMessageIntegrity: true, stun.AttrMessageIntegritySHA256: true,
	stun.AttrMappedAddress: true, stun.AttrXORMappedAddress: true, stun.AttrPriority: true,
	stun.AttrUseCandidate: true,
}

// Answer is the server's logic for one datagram: the response to send (nil
// to send nothing), whether it goes out of the other port, and the outcome.
// from is the request's source, local the address and port it arrived on,
// other the address and port of the other socket. It never panics on any
// input.
func Answer(pkt []byte, from, local, other netip.AddrPort, software stun.Software) (res []byte, changePort bool, outcome string) {
	if len(pkt) < 20 || pkt[0]&0xC0 != 0 || !stun.IsMessage(pkt) {
		return nil, false, DropNotSTUN
	}
	size := int(pkt[2])<<8 | int(pkt[3])
	if size%4 != 0 || len(pkt) != 20+size {
		return nil, false, DropMalformed
	}
	req := &stun.Message{Raw: append([]byte(nil), pkt...)}
	if err := req.Decode(); err != nil {
		return nil, false, DropMalformed
	}
	if req.Type.Class != stun.ClassRequest {
		return nil, false, DropNotRequest
	}
	if req.Type.Method != stun.MethodBinding {
		return nil, false, DropUnknownMethod
	}
	if req.Contains(stun.AttrFingerprint) {
		if err := stun.Fingerprint.Check(req); err != nil {
			return nil, false, DropBadFingerprint
		}
	}
	var unknown stun.UnknownAttributes
	for _, a := range req.Attributes {
		if a.Type.Required() && !knownRequired[a.Type] {
			unknown = append(unknown, a.Type)
		}
	}
	var flags uint32
	if v, err := req.Get(stun.AttrChangeRequest); err == nil {
		if len(v) != 4 {
			return nil, false, DropMalformed
		}
		flags = uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
		if flags&ChangeIP != 0 {
			// One address: the IP cannot change. RFC 5780 7.2: 420.
			unknown = append(unknown, stun.AttrChangeRequest)
		}
	}
	tid := stun.NewTransactionIDSetter(req.TransactionID)
	if len(unknown) > 0 {
		if len(unknown) > 16 {
			unknown = unknown[:16]
		}
		m, err := stun.Build(tid, stun.NewType(stun.MethodBinding, stun.ClassErrorResponse),
			stun.CodeUnknownAttribute, unknown, software, stun.Fingerprint)
		if err != nil {
			return nil, false, DropMalformed
		}
		return m.Raw, false, ResultError
	}
	changePort = flags&ChangePort != 0
	origin := local
	if changePort {
		origin = other
	}
	ip := net.IP(from.Addr().Unmap().AsSlice())
	port := int(from.Port())
	setters := []stun.Setter{tid, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: ip, Port: port},
		&stun.MappedAddress{IP: ip, Port: port},
	}
	if origin.Addr().IsValid() && !origin.Addr().IsUnspecified() {
		setters = append(setters, &stun.ResponseOrigin{IP: net.IP(origin.Addr().Unmap().AsSlice()), Port: int(origin.Port())})
	}
	setters = append(setters, software, stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		return nil, false, DropMalformed
	}
	if changePort {
		return m.Raw, true, ResultChangedPort
	}
	return m.Raw, false, ResultBinding
}

type metrics struct {
	requests prometheus.Counter
	answers  *prometheus.CounterVec
	drops    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{Name: "trellis_stun_datagrams_total",
			Help: "Datagrams received by the STUN server."}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_stun_answers_total",
			Help: "STUN answers sent, by kind (binding, changed_port, error)."}, []string{"kind"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "trellis_stun_dropped_total",
			Help: "STUN datagrams dropped without an answer, by reason."}, []string{"reason"}),
	}
	for _, k := range []string{ResultBinding, ResultChangedPort, ResultError} {
		m.answers.WithLabelValues(k)
	}
	for _, r := range []string{DropNotSTUN, DropMalformed, DropNotRequest, DropUnknownMethod, DropBadFingerprint, "rate_limited", "oversize", "write_error"} {
		m.drops.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.answers, m.drops)
	}
	return m
}

func (m *metrics) answer(kind string) { m.answers.WithLabelValues(kind).Inc() }
func (m *metrics) drop(reason string) { m.drops.WithLabelValues(reason).Inc() }
