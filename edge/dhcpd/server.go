package dhcpd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"
)

// Timing of the server.
const (
	// OfferHold is how long an offered address stays reserved for the
	// client waiting for its REQUEST.
	OfferHold = time.Minute
	// DeclineHold is how long an address a client declined (someone else
	// uses it) is not handed out.
	DeclineHold = 10 * time.Minute
	// pruneEvery is how often expired leases are removed.
	pruneEvery = 30 * time.Second
)

// Lease is one address bound to a client.
type Lease struct {
	MAC      string     `json:"mac"`
	Address  netip.Addr `json:"address"`
	Hostname string     `json:"hostname,omitempty"`
	Expires  time.Time  `json:"expires"`
	Static   bool       `json:"static,omitempty"`
}

// record is a lease, or an offer waiting for the client's REQUEST.
type record struct {
	Lease
	offered bool
}

// Options are how a server runs (as opposed to what it serves).
type Options struct {
	// Dir holds the lease file <Dir>/<interface>.json ("" = leases are
	// kept in memory only).
	Dir    string
	Logger *slog.Logger
	// OnChange is called when a lease is added or removed (not when one
	// is renewed); it must not block.
	OnChange func()
	// Conn replaces the socket bound to the interface on UDP port 67
	// (tests).
	Conn net.PacketConn
	// Now replaces the clock (tests).
	Now func() time.Time
}

// Server is the DHCP server of one interface.
type Server struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	file string
	// onChange is never nil.
	onChange func()

	mu         sync.Mutex
	byMAC      map[string]*record
	byAddr     map[netip.Addr]*record
	static     map[string]StaticLease
	staticAddr map[netip.Addr]bool
	declined   map[netip.Addr]time.Time

	srv  *server4.Server
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// New checks cfg and loads the interface's lease file, without opening a
// socket: Handle answers requests. Start serves them on the network.
func New(cfg Config, o Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("DHCP server on %s: %w", cfg.Interface, err)
	}
	cfg = cfg.withDefaults()
	s := &Server{
		cfg: cfg, log: o.Logger, now: o.Now, onChange: o.OnChange,
		byMAC: map[string]*record{}, byAddr: map[netip.Addr]*record{},
		static: map[string]StaticLease{}, staticAddr: map[netip.Addr]bool{},
		declined: map[netip.Addr]time.Time{}, stop: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "dhcpd", "interface", cfg.Interface)
	if s.now == nil {
		s.now = time.Now
	}
	if s.onChange == nil {
		s.onChange = func() {}
	}
	for _, st := range cfg.Static {
		s.static[st.MAC.String()] = st
		s.staticAddr[st.Address] = true
	}
	if o.Dir != "" {
		s.file = LeaseFile(o.Dir, cfg.Interface)
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Start returns a server answering on its interface (or on o.Conn).
func Start(cfg Config, o Options) (*Server, error) {
	s, err := New(cfg, o)
	if err != nil {
		return nil, err
	}
	var opts []server4.ServerOpt
	if o.Conn != nil {
		opts = append(opts, server4.WithConn(o.Conn))
	}
	srv, err := server4.NewServer(cfg.Interface, &net.UDPAddr{Port: dhcpv4.ServerPort}, s.serve, opts...)
	if err != nil {
		hint := ""
		if errors.Is(err, syscall.EADDRINUSE) || strings.Contains(err.Error(), "address already in use") {
			hint = " (is another DHCP server, e.g. dnsmasq or isc-dhcp-server, running on this box? stop it)"
		}
		return nil, fmt.Errorf("DHCP server on %s: opening UDP port 67: %w%s", cfg.Interface, err, hint)
	}
	s.srv = srv
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(); err != nil && !s.stopping() {
			s.log.Error("DHCP server stopped", "err", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.pruneLoop()
	}()
	s.log.Info("DHCP server started", "address", cfg.Address, "range_start", cfg.RangeStart, "range_end", cfg.RangeEnd, "leases", len(s.Leases()))
	return s, nil
}

// Config returns the server's configuration (with defaults filled in).
func (s *Server) Config() Config { return s.cfg }

func (s *Server) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// Close stops the server; its lease file stays.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		// A request being handled finishes (and saves) now; later ones
		// see stop and change nothing: a server started next on the same
		// lease file is never overwritten by this one.
		s.mu.Lock()
		s.mu.Unlock()
		if s.srv != nil {
			err = s.srv.Close()
		}
		s.wg.Wait()
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *Server) pruneLoop() {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.Prune()
		}
	}
}

// Prune removes expired leases and offers and forgets declines that are
// over.
func (s *Server) Prune() {
	s.mu.Lock()
	if s.stopping() {
		s.mu.Unlock()
		return
	}
	now := s.now()
	changed := false
	for _, r := range s.byMAC {
		if !r.Expires.After(now) {
			s.remove(r)
			changed = changed || !r.offered
		}
	}
	for a, until := range s.declined {
		if !until.After(now) {
			delete(s.declined, a)
		}
	}
	if changed {
		s.save()
	}
	s.mu.Unlock()
	if changed {
		s.onChange()
	}
}

// Leases returns the current (unexpired, acknowledged) leases by address.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leasesLocked(s.now())
}

func (s *Server) leasesLocked(now time.Time) []Lease {
	out := []Lease{}
	for _, r := range s.byMAC {
		if !r.offered && r.Expires.After(now) {
			out = append(out, r.Lease)
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.Address.Compare(b.Address) })
	return out
}

// serve answers one packet from the socket.
func (s *Server) serve(conn net.PacketConn, _ net.Addr, req *dhcpv4.DHCPv4) {
	resp := s.Handle(req)
	if resp == nil {
		return
	}
	// Without an address of its own the client hears broadcasts only
	// (unicasting to the offered address would need an ARP entry first);
	// a NAK is always broadcast (RFC 2131 4.1).
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	if ci := req.ClientIPAddr; ci != nil && !ci.IsUnspecified() && resp.MessageType() != dhcpv4.MessageTypeNak {
		dst.IP = ci
	}
	if _, err := conn.WriteTo(resp.ToBytes(), dst); err != nil && !s.stopping() {
		s.log.Warn("sending DHCP reply failed", "to", dst, "type", resp.MessageType(), "err", err)
	}
}

// Handle answers one request: an OFFER, ACK or NAK, or nil when there is
// nothing to answer (or the packet is not for this server).
func (s *Server) Handle(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	if req == nil || req.OpCode != dhcpv4.OpcodeBootRequest || req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return nil
	}
	// Relayed requests are for other subnets: this server serves only its
	// own.
	if gi := req.GatewayIPAddr; gi != nil && !gi.IsUnspecified() {
		return nil
	}
	if isZero(req.ClientHWAddr) {
		return nil
	}
	s.mu.Lock()
	if s.stopping() {
		s.mu.Unlock()
		return nil
	}
	var resp *dhcpv4.DHCPv4
	changed := false
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		resp, changed = s.discover(req)
	case dhcpv4.MessageTypeRequest:
		resp, changed = s.request(req)
	case dhcpv4.MessageTypeRelease:
		changed = s.release(req)
	case dhcpv4.MessageTypeDecline:
		changed = s.decline(req)
	case dhcpv4.MessageTypeInform:
		resp = s.inform(req)
	}
	s.mu.Unlock()
	if changed {
		s.onChange()
	}
	return resp
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func ip4(ip net.IP) (netip.Addr, bool) {
	if ip == nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Addr{}, false
	}
	a = a.Unmap()
	return a, a.Is4() && !a.IsUnspecified()
}

// free reports whether a may be handed to mac.
func (s *Server) free(a netip.Addr, mac string, now time.Time) bool {
	if !s.cfg.inRange(a) || a == s.cfg.Address.Addr() || a == s.cfg.Gateway || s.staticAddr[a] {
		return false
	}
	if until, ok := s.declined[a]; ok && until.After(now) {
		return false
	}
	r := s.byAddr[a]
	return r == nil || r.MAC == mac || !r.Expires.After(now)
}

// pick chooses the address to offer mac: its static lease, its current
// or previous lease, the address it asks for, or the lowest free one.
func (s *Server) pick(mac string, requested netip.Addr, now time.Time) (netip.Addr, bool) {
	if st, ok := s.static[mac]; ok {
		return st.Address, true
	}
	if r := s.byMAC[mac]; r != nil && s.free(r.Address, mac, now) {
		return r.Address, true
	}
	if requested.IsValid() && s.free(requested, mac, now) {
		return requested, true
	}
	for v, end := addrU32(s.cfg.RangeStart), addrU32(s.cfg.RangeEnd); v <= end && v != 0; v++ {
		if a := u32Addr(v); s.free(a, mac, now) {
			return a, true
		}
		if v == end {
			break
		}
	}
	return netip.Addr{}, false
}

// remove forgets a record.
func (s *Server) remove(r *record) {
	if s.byMAC[r.MAC] == r {
		delete(s.byMAC, r.MAC)
	}
	if s.byAddr[r.Address] == r {
		delete(s.byAddr, r.Address)
	}
}

// put records r, replacing the client's previous record and whatever
// (expired) record held the address.
func (s *Server) put(r *record) {
	if old := s.byMAC[r.MAC]; old != nil {
		s.remove(old)
	}
	if old := s.byAddr[r.Address]; old != nil {
		s.remove(old)
	}
	s.byMAC[r.MAC] = r
	s.byAddr[r.Address] = r
}

// leaseTime is what a client gets: the lease it asks for within bounds,
// else the default.
func (s *Server) leaseTime(req *dhcpv4.DHCPv4) time.Duration {
	want := req.IPAddressLeaseTime(0)
	if want <= 0 {
		return s.cfg.LeaseTime
	}
	return min(max(want, MinLeaseTime), s.cfg.MaxLeaseTime)
}

func (s *Server) discover(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
	now := s.now()
	mac := req.ClientHWAddr.String()
	requested, _ := ip4(req.RequestedIPAddress())
	a, ok := s.pick(mac, requested, now)
	if !ok {
		s.log.Warn("no free address to offer", "mac", mac, "range_start", s.cfg.RangeStart, "range_end", s.cfg.RangeEnd)
		return nil, false
	}
	lease := s.leaseTime(req)
	changed := false
	if r := s.byMAC[mac]; r == nil || r.Address != a || !r.Expires.After(now) {
		// A new offer (an unexpired lease of this address stays as it is).
		changed = r != nil && !r.offered && r.Expires.After(now)
		s.put(&record{Lease: Lease{MAC: mac, Address: a, Hostname: cleanHostname(req.HostName()), Expires: now.Add(OfferHold), Static: s.staticAddr[a]}, offered: true})
		if changed {
			s.save()
		}
	}
	s.log.Debug("offer", "mac", mac, "address", a)
	return s.reply(req, dhcpv4.MessageTypeOffer, a, lease), changed
}

func (s *Server) nak(req *dhcpv4.DHCPv4, why string) *dhcpv4.DHCPv4 {
	s.log.Info("refusing a request", "mac", req.ClientHWAddr.String(), "reason", why)
	resp, err := dhcpv4.NewReplyFromRequest(req,
		dhcpv4.WithMessageType(dhcpv4.MessageTypeNak),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(s.cfg.Address.Addr().AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptMessage(why)),
	)
	if err != nil {
		return nil
	}
	return resp
}

func (s *Server) request(req *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, bool) {
	now := s.now()
	mac := req.ClientHWAddr.String()
	self := s.cfg.Address.Addr()
	if sid := req.ServerIdentifier(); sid != nil {
		if a, _ := ip4(sid); a != self {
			// The client took another server's offer: ours is free again.
			if r := s.byMAC[mac]; r != nil && r.offered {
				s.remove(r)
			}
			return nil, false
		}
	}
	want, ok := ip4(req.RequestedIPAddress())
	if !ok {
		if want, ok = ip4(req.ClientIPAddr); !ok {
			return s.nak(req, "no address requested"), false
		}
	}
	r := s.byMAC[mac]
	st, isStatic := s.static[mac]
	switch {
	case isStatic && want != st.Address:
		return s.nak(req, fmt.Sprintf("%s is not this client's address", want)), false
	case !isStatic && (r == nil || r.Address != want || !s.free(want, mac, now)):
		return s.nak(req, fmt.Sprintf("%s is not leased to this client", want)), false
	}
	lease := s.leaseTime(req)
	host := cleanHostname(req.HostName())
	if isStatic && st.Hostname != "" {
		host = st.Hostname
	}
	if host == "" && r != nil {
		host = r.Hostname
	}
	changed := r == nil || r.offered || r.Address != want || !r.Expires.After(now)
	s.put(&record{Lease: Lease{MAC: mac, Address: want, Hostname: host, Expires: now.Add(lease), Static: isStatic}})
	s.save()
	if changed {
		s.log.Info("lease granted", "mac", mac, "address", want, "hostname", host, "lease", lease)
	}
	return s.reply(req, dhcpv4.MessageTypeAck, want, lease), changed
}

func (s *Server) release(req *dhcpv4.DHCPv4) bool {
	mac := req.ClientHWAddr.String()
	a, ok := ip4(req.ClientIPAddr)
	r := s.byMAC[mac]
	if !ok || r == nil || r.Address != a {
		return false
	}
	s.remove(r)
	s.save()
	s.log.Info("lease released", "mac", mac, "address", a)
	return !r.offered
}

func (s *Server) decline(req *dhcpv4.DHCPv4) bool {
	mac := req.ClientHWAddr.String()
	a, ok := ip4(req.RequestedIPAddress())
	r := s.byMAC[mac]
	if !ok || r == nil || r.Address != a {
		return false
	}
	s.remove(r)
	if s.staticAddr[a] {
		s.log.Warn("a client declined its static address: another host uses it", "mac", mac, "address", a)
	} else {
		s.declined[a] = s.now().Add(DeclineHold)
		s.log.Warn("a client declined an address: another host uses it; not handing it out for a while", "mac", mac, "address", a, "for", DeclineHold)
	}
	s.save()
	return !r.offered
}

func (s *Server) inform(req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	ci, ok := ip4(req.ClientIPAddr)
	if !ok || !s.cfg.Address.Masked().Contains(ci) {
		return nil
	}
	return s.reply(req, dhcpv4.MessageTypeAck, netip.Addr{}, 0)
}

// reply builds an OFFER or ACK of address a (none for INFORM) for lease
// (0 for INFORM).
func (s *Server) reply(req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, a netip.Addr, lease time.Duration) *dhcpv4.DHCPv4 {
	self := s.cfg.Address.Addr().AsSlice()
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(self)),
		dhcpv4.WithOption(dhcpv4.OptSubnetMask(net.CIDRMask(s.cfg.Address.Bits(), 32))),
		dhcpv4.WithOption(dhcpv4.OptRouter(s.cfg.Gateway.AsSlice())),
	}
	if a.IsValid() {
		mods = append(mods, dhcpv4.WithYourIP(a.AsSlice()))
	}
	if lease > 0 {
		mods = append(mods,
			dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(lease)),
			dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(lease/2)),
			dhcpv4.WithOption(dhcpv4.OptRebindingTimeValue(lease*7/8)),
		)
	}
	if len(s.cfg.DNS) > 0 {
		ips := make([]net.IP, len(s.cfg.DNS))
		for i, d := range s.cfg.DNS {
			ips[i] = d.AsSlice()
		}
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDNS(ips...)))
	}
	if s.cfg.Domain != "" {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptDomainName(s.cfg.Domain)))
	}
	for _, o := range s.cfg.Options {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(o.Code), o.Value))
	}
	// A static lease's host name wins over an extra option 12.
	if st, ok := s.static[req.ClientHWAddr.String()]; ok && st.Hostname != "" && a == st.Address {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptHostName(st.Hostname)))
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		s.log.Error("building a DHCP reply", "err", err)
		return nil
	}
	return resp
}
