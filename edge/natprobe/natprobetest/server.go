// Package natprobetest helps NAT traversal tests: a small STUN server
// (RFC 5389 Binding on two UDP ports of one address, with RFC 5780's
// CHANGE-REQUEST "change port": answer from the other port, like
// manage's server) and the NAT types of trellis-lab's ISP routers made
// with nftables in a network namespace (AddNAT).
package natprobetest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/stun/v3"
)

// Server is a STUN server listening on two ports of one address.
type Server struct {
	conns [2]*net.UDPConn
	wg    sync.WaitGroup
	// Requests counts the Binding requests answered.
	Requests atomic.Uint64
}

// Listen starts a server on addr's two ports (0 = any free port) of ip.
func Listen(ip netip.Addr, portA, portB uint16) (*Server, error) {
	s := &Server{}
	for i, p := range []uint16{portA, portB} {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, p)))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("STUN test server: %w", err)
		}
		s.conns[i] = c
	}
	for i := range s.conns {
		s.wg.Add(1)
		go s.serve(i)
	}
	return s, nil
}

// Addrs returns the server's two endpoints (port A, port B).
func (s *Server) Addrs() [2]netip.AddrPort {
	return [2]netip.AddrPort{
		s.conns[0].LocalAddr().(*net.UDPAddr).AddrPort(),
		s.conns[1].LocalAddr().(*net.UDPAddr).AddrPort(),
	}
}

// Close stops the server.
func (s *Server) Close() {
	for _, c := range s.conns {
		if c != nil {
			c.Close()
		}
	}
	s.wg.Wait()
}

func (s *Server) serve(i int) {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conns[i].ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() != nil || m.Type != stun.BindingRequest {
			continue
		}
		out := i
		if v, err := m.Get(stun.AttrChangeRequest); err == nil && len(v) == 4 && v[3]&0x02 != 0 {
			out = 1 - i
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		resp, err := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())}, stun.Fingerprint)
		if err != nil {
			continue
		}
		s.Requests.Add(1)
		_, _ = s.conns[out].WriteToUDPAddrPort(resp.Raw, from)
	}
}
