package natprobe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/dataplane"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestClassify(t *testing.T) {
	servers := []netip.AddrPort{ap("100.64.0.2:3478"), ap("100.64.0.2:3479")}
	local := ap("192.168.1.10:4789")
	got := func(mapped string) answer {
		return answer{ok: true, res: dataplane.STUNResult{Mapped: ap(mapped), Local: local}}
	}
	silent := answer{err: dataplane.ErrSTUNTimeout}
	tests := []struct {
		name      string
		servers   []netip.AddrPort
		a, b      answer
		locals    []netip.Addr
		want      string
		wantError bool
	}{
		{"no NAT", servers, got("192.168.1.10:4789"), answer{}, nil, devproto.NATNone, false},
		{"no NAT, socket bound to the interface only", servers,
			answer{ok: true, res: dataplane.STUNResult{Mapped: ap("192.168.1.10:4789"), Local: ap("0.0.0.0:4789")}}, answer{},
			[]netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.168.1.10")}, devproto.NATNone, false},
		{"same address, other port: a NAT", servers, got("192.168.1.10:5000"), got("192.168.1.10:5000"), nil, devproto.NATRestricted, false},
		{"endpoint-independent mapping", servers, got("203.0.113.1:4789"), got("203.0.113.1:4789"), nil, devproto.NATRestricted, false},
		{"symmetric", servers, got("203.0.113.1:40001"), got("203.0.113.1:40002"), nil, devproto.NATSymmetric, false},
		{"symmetric, other address", servers, got("203.0.113.1:4789"), got("203.0.113.2:4789"), nil, devproto.NATSymmetric, false},
		{"second server silent", servers, got("203.0.113.1:4789"), silent, nil, devproto.NATUnknown, true},
		{"one server configured", servers[:1], got("203.0.113.1:4789"), answer{}, nil, devproto.NATUnknown, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := classify(tc.servers, tc.a, tc.b, tc.locals)
			if r.NAT != tc.want || (r.Err != "") != tc.wantError {
				t.Fatalf("NAT %q error %q, want %q (error %v)", r.NAT, r.Err, tc.want, tc.wantError)
			}
			if r.Mapped != tc.a.res.Mapped || r.Server != tc.servers[0].String() {
				t.Fatalf("mapped %s from %s", r.Mapped, r.Server)
			}
		})
	}
}

func TestCombine(t *testing.T) {
	for _, tc := range []struct {
		nat  string
		f    Filter
		want string
	}{
		{devproto.NATRestricted, FilterOpen, devproto.NATFullCone},
		{devproto.NATRestricted, FilterPort, devproto.NATRestricted},
		{devproto.NATRestricted, FilterUnknown, devproto.NATRestricted},
		{devproto.NATSymmetric, FilterOpen, devproto.NATSymmetric},
		{devproto.NATNone, FilterOpen, devproto.NATNone},
		{devproto.NATBlocked, FilterOpen, devproto.NATBlocked},
		{devproto.NATUnknown, FilterOpen, devproto.NATUnknown},
	} {
		if got := Combine(Result{NAT: tc.nat}, tc.f).NAT; got != tc.want {
			t.Errorf("%s + filter %s = %s, want %s", tc.nat, tc.f, got, tc.want)
		}
	}
}

// stunFunc adapts a function to Client: the tests below script what
// servers answer, to check the order of the questions and the fallbacks.
type stunFunc func(server netip.AddrPort, change bool) (dataplane.STUNResult, error)

func (f stunFunc) STUN(_ context.Context, _ string, s netip.AddrPort, change bool) (dataplane.STUNResult, error) {
	return f(s, change)
}

func TestDetectOrderAndFallbacks(t *testing.T) {
	s1, s2, s3 := ap("100.64.0.2:3478"), ap("100.64.0.2:3479"), ap("198.51.100.1:3478")
	local := ap("192.168.1.10:4789")
	mapped := ap("203.0.113.1:4789")
	t.Run("questions", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			mapB  netip.AddrPort
			want  string
			asked string
		}{
			{"endpoint-independent", mapped, devproto.NATRestricted, "100.64.0.2:3478 100.64.0.2:3479"},
			{"symmetric", ap("203.0.113.1:5000"), devproto.NATSymmetric, "100.64.0.2:3478 100.64.0.2:3479"},
			{"none", local, devproto.NATNone, "100.64.0.2:3478"},
		} {
			var asked []string
			r := Mapping(context.Background(), stunFunc(func(s netip.AddrPort, change bool) (dataplane.STUNResult, error) {
				if change {
					t.Fatal("the mapping test asked for a change of port")
				}
				asked = append(asked, s.String())
				if s == s2 {
					return dataplane.STUNResult{Mapped: tc.mapB, Local: local}, nil
				}
				if tc.want == devproto.NATNone {
					return dataplane.STUNResult{Mapped: local, Local: local}, nil
				}
				return dataplane.STUNResult{Mapped: mapped, Local: local}, nil
			}), "wan0", []netip.AddrPort{s1, s2, s3}, nil)
			if r.NAT != tc.want || strings.Join(asked, " ") != tc.asked {
				t.Fatalf("%s: NAT %s after asking %v", tc.name, r.NAT, asked)
			}
			if r.WAN != "wan0" || r.CheckedAt.IsZero() {
				t.Fatalf("%s: result %+v", tc.name, r)
			}
		}
	})
	t.Run("filtering", func(t *testing.T) {
		for _, tc := range []struct {
			err  error
			want Filter
		}{
			{nil, FilterOpen},
			{fmt.Errorf("STUN: %w", dataplane.ErrSTUNTimeout), FilterPort},
			{errors.New("no tunnel socket"), FilterUnknown},
		} {
			f, err := Filtering(context.Background(), stunFunc(func(s netip.AddrPort, change bool) (dataplane.STUNResult, error) {
				if !change || s != s1 {
					t.Fatalf("asked %s change %v", s, change)
				}
				return dataplane.STUNResult{Mapped: mapped, From: s2, Local: local}, tc.err
			}), "wan0", s1)
			if f != tc.want || (err != nil) != (tc.want == FilterUnknown) {
				t.Fatalf("error %v: filter %s (%v), want %s", tc.err, f, err, tc.want)
			}
		}
	})
	t.Run("server 1 silent, an extra one answers", func(t *testing.T) {
		r := Mapping(context.Background(), stunFunc(func(s netip.AddrPort, change bool) (dataplane.STUNResult, error) {
			if s == s3 {
				return dataplane.STUNResult{Mapped: mapped, Local: local}, nil
			}
			return dataplane.STUNResult{}, dataplane.ErrSTUNTimeout
		}), "wan0", []netip.AddrPort{s1, s2, s3}, nil)
		if r.NAT != devproto.NATUnknown || r.Mapped != mapped || r.Server != s3.String() || r.Err == "" {
			t.Fatalf("result %+v", r)
		}
	})
	t.Run("nobody answers", func(t *testing.T) {
		r := Mapping(context.Background(), stunFunc(func(netip.AddrPort, bool) (dataplane.STUNResult, error) {
			return dataplane.STUNResult{}, errors.New("no STUN answer")
		}), "wan0", []netip.AddrPort{s1, s2}, nil)
		if r.NAT != devproto.NATBlocked || r.Mapped.IsValid() || r.Err == "" {
			t.Fatalf("result %+v", r)
		}
		p := r.Public()
		if p.NAT != devproto.NATBlocked || p.Address != "" || p.Error == "" {
			t.Fatalf("public %+v", p)
		}
	})
	t.Run("no servers", func(t *testing.T) {
		r := Mapping(context.Background(), nil, "wan0", nil, nil)
		if r.NAT != devproto.NATUnknown || r.Err == "" {
			t.Fatalf("result %+v", r)
		}
	})
}

func TestResolveServers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ResolveServers(ctx, []string{"100.64.0.2:3478", "localhost:3479", "[2001:db8::1]:3478", "nope", "1.2.3.4:0", "1.2.3.4:x"})
	if len(got) != 2 || got[0] != ap("100.64.0.2:3478") || got[1] != ap("127.0.0.1:3479") {
		t.Fatalf("resolved %v", got)
	}
	if err == nil || strings.Count(err.Error(), "STUN server") != 4 {
		t.Fatalf("error %v", err)
	}
}

func TestPublic(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	p := Result{Mapped: ap("203.0.113.1:4789"), NAT: devproto.NATFullCone, Server: "100.64.0.2:3478", CheckedAt: at}.Public()
	want := devproto.PublicEndpoint{Address: "203.0.113.1", Port: 4789, NAT: devproto.NATFullCone, Server: "100.64.0.2:3478", CheckedAt: at.UTC()}
	if *p != want {
		t.Fatalf("public %+v, want %+v", *p, want)
	}
}
