package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// Ping sends ICMP echo requests from the namespace ns (kernel name) to dst
// until one is answered, up to attempts, waiting at most per for each. It
// returns the round-trip time of the first answer.
func Ping(ctx context.Context, ns string, dst netip.Addr, attempts int, per time.Duration) (time.Duration, error) {
	var conn *icmp.PacketConn
	err := InNamespace(ns, func() error {
		var err error
		conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("icmp socket in %s: %w", ns, err)
	}
	defer conn.Close()
	id := os.Getpid() & 0xffff
	buf := make([]byte, 1500)
	var lastErr error
	for seq := 1; seq <= attempts; seq++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("trellis-lab")}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := conn.WriteTo(wb, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			lastErr = err
			continue
		}
		deadline := start.Add(per)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		_ = conn.SetReadDeadline(deadline)
		for {
			n, peer, err := conn.ReadFrom(buf)
			if err != nil {
				lastErr = err
				break
			}
			rm, err := icmp.ParseMessage(1, buf[:n])
			if err != nil || rm.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			echo, ok := rm.Body.(*icmp.Echo)
			if !ok || echo.ID != id || echo.Seq != seq {
				continue
			}
			if ip, ok := peer.(*net.IPAddr); !ok || !ip.IP.Equal(dst.AsSlice()) {
				continue
			}
			return time.Since(start), nil
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no reply")
	}
	return 0, fmt.Errorf("ping %s from %s: %w", dst, ns, lastErr)
}
