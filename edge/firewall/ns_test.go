package firewall

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/internal/nstest"
	"golang.org/x/sys/unix"
)

// The kernel is changed for real, so each namespace test re-runs the test
// binary inside a network namespace of its own (h8a-<pid>-<test>): the
// edge. The LAN hosts and the "ISPs" are further namespaces created from
// there, all named h8a-<pid>-….
var scope = nstest.Scope{Prefix: "h8a", Env: "TRELLIS_FIREWALL_NS_TEST", Why: "network namespaces, nftables, routing rules"}

// serve answers every TCP connection or UDP datagram on addr (in ns) with
// "<tag> <local> <remote>", until the test ends.
func serve(t *testing.T, ns, network, addr, tag string) {
	t.Helper()
	var wg sync.WaitGroup
	err := nstest.Do(ns, func() error {
		switch network {
		case "tcp", "echo":
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			t.Cleanup(func() { ln.Close(); wg.Wait() })
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					if network == "tcp" {
						fmt.Fprintf(c, "%s %s %s", tag, c.LocalAddr(), c.RemoteAddr())
						c.Close()
						continue
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer c.Close()
						_ = c.SetDeadline(time.Now().Add(time.Minute))
						_, _ = io.Copy(c, c)
					}()
				}
			}()
		case "udp":
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			t.Cleanup(func() { pc.Close(); wg.Wait() })
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 1500)
				for {
					_, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					fmt.Fprintf(writerTo{pc, from}, "%s %s %s", tag, pc.LocalAddr(), from)
				}
			}()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("serving %s %s in %s: %v", network, addr, ns, err)
	}
}

type writerTo struct {
	pc net.PacketConn
	to net.Addr
}

func (w writerTo) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.to) }

// ask sends one request from ns (bound to laddr when set) and returns the
// answer; a dropped request is an error after a second.
func ask(ns, network, laddr, raddr string) (string, error) {
	var answer string
	err := nstest.Do(ns, func() error {
		d := net.Dialer{Timeout: time.Second}
		if laddr != "" {
			var err error
			if network == "tcp" {
				d.LocalAddr, err = net.ResolveTCPAddr("tcp", laddr)
			} else {
				d.LocalAddr, err = net.ResolveUDPAddr("udp", laddr)
			}
			if err != nil {
				return err
			}
		}
		c, err := d.Dial(network, raddr)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if network == "udp" {
			if _, err := c.Write([]byte("hi")); err != nil {
				return err
			}
			buf := make([]byte, 1500)
			n, err := c.Read(buf)
			if err != nil {
				return err
			}
			answer = string(buf[:n])
			return nil
		}
		b, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		answer = string(b)
		return nil
	})
	return answer, err
}

// eventually retries ask (a bounded number of times) until the answer
// starts with want.
func eventually(ns, network, laddr, raddr, want string) (string, error) {
	var last string
	var err error
	for range 15 {
		last, err = ask(ns, network, laddr, raddr)
		if err == nil && strings.HasPrefix(last, want) {
			return last, nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err == nil {
		err = errors.New("wrong answer")
	}
	return last, err
}

// echoOnce writes a line on c and reads it back (bounded).
func echoOnce(c net.Conn, line string) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return err
	}
	buf := make([]byte, len(line)+1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != line+"\n" {
		return fmt.Errorf("echo %q, want %q", buf, line)
	}
	return nil
}

// openTUN creates TUN device name (standing in for the data plane's) and
// returns the destination ports of the UDP packets routed into it.
func openTUN(t *testing.T, name string) <-chan uint16 {
	t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Skipf("no TUN device: %v", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		t.Fatalf("TUNSETIFF %s: %v", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	ports := make(chan uint16, 64)
	done := make(chan struct{})
	t.Cleanup(func() { f.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 2000)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			p := buf[:n]
			if n < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP {
				continue
			}
			ihl := int(p[0]&15) * 4
			if n < ihl+4 {
				continue
			}
			select {
			case ports <- uint16(p[ihl+2])<<8 | uint16(p[ihl+3]):
			default:
			}
		}
	}()
	return ports
}

// sendUDP sends one datagram from ns to raddr (no answer expected).
func sendUDP(t *testing.T, ns, raddr string) {
	t.Helper()
	err := nstest.Do(ns, func() error {
		c, err := net.Dial("udp", raddr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("to the tunnel"))
		return err
	})
	if err != nil {
		t.Fatalf("sending to %s from %s: %v", raddr, ns, err)
	}
}

// tunnelGets sends to port (bounded retries) and reports whether the
// datagram came out of the TUN device.
func tunnelGets(t *testing.T, ns string, ports <-chan uint16, dst string, port uint16) bool {
	t.Helper()
	for range 3 {
		sendUDP(t, ns, fmt.Sprintf("%s:%d", dst, port))
		timeout := time.After(time.Second)
	wait:
		for {
			select {
			case p := <-ports:
				if p == port {
					return true
				}
			case <-timeout:
				break wait
			}
		}
	}
	return false
}
