package lab

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/trellis-sdwan/trellis/lab/relay"
	"github.com/vishvananda/netlink"
)

// relays starts one impairment relay process per WAN link, or, without a
// relay command, joins the relay namespace's two interfaces with a kernel
// bridge (a plain, unimpairable link).
func (b *builder) relays(ctx context.Context, cmd []string) error {
	for _, r := range b.plan.Relays {
		n, err := b.node(r.Node)
		if err != nil {
			return err
		}
		h, err := b.handle(r.Node)
		if err != nil {
			return err
		}
		if len(cmd) == 0 {
			if r.Impair != nil {
				return fmt.Errorf("link %s has an impairment but the lab has no relays: drop --no-relay", r.Name)
			}
			if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br"}}); err != nil {
				return fmt.Errorf("%s: adding bridge: %w", r.Node, err)
			}
			for _, ifn := range []string{r.EdgeSide, r.ISPSide} {
				if err := b.configure(r.Node, ifn, invalidPrefix, "br"); err != nil {
					return err
				}
			}
			if err := b.configure(r.Node, "br", invalidPrefix, ""); err != nil {
				return err
			}
			continue
		}
		// One wire-sized frame per packet into the relay, so loss, delay
		// and rate act on packets and not on 64 KiB GSO super-frames: a
		// GSO limit of one segment makes the sending stack (or the
		// forwarding path) segment before the veth.
		for _, end := range []Iface{r.Edge, r.ISP} {
			eh, err := b.handle(end.Node)
			if err != nil {
				return err
			}
			link, err := eh.LinkByName(end.Name)
			if err != nil {
				return fmt.Errorf("%s: finding %s: %w", end.Node, end.Name, err)
			}
			if err := eh.LinkSetGSOMaxSegs(link, 1); err != nil {
				return fmt.Errorf("%s: limiting GSO on %s: %w", end.Node, end.Name, err)
			}
		}
		sock := filepath.Join(b.st.Dir, strings.ReplaceAll(r.Name, "/", "-")+".sock")
		if len(sock) >= 104 { // sun_path is 108 bytes
			return fmt.Errorf("relay control socket path %s is too long for a unix socket: use a shorter state root", sock)
		}
		argv := append(append([]string(nil), cmd...),
			"--name", r.Name, "--a", r.EdgeSide, "--b", r.ISPSide, "--control", sock)
		if r.Impair != nil {
			argv = append(argv, r.Impair.Args()...)
		}
		logPath := filepath.Join(b.st.Dir, "logs", strings.ReplaceAll(r.Name, "/", "-")+"-relay.log")
		b.st.Relays = append(b.st.Relays, RelayRecord{Name: r.Name, NS: n.NS, Socket: sock})
		rec, err := startInNamespace(n.NS, "relay", r.Name, argv, nil, "", logPath)
		if rec.PID > 0 {
			b.st.Processes = append(b.st.Processes, rec)
		}
		if serr := b.st.Save(); serr != nil {
			err = errors.Join(err, serr)
		}
		if err != nil {
			return err
		}
	}
	// Wait until every relay answers on its control socket.
	for _, r := range b.st.Relays {
		err := waitFor(ctx, 15*time.Second, func() error {
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := relay.Call(cctx, r.Socket, relay.Request{Op: "get"})
			return err
		})
		if err != nil {
			return fmt.Errorf("relay %s did not start (see its log in %s): %w", r.Name, filepath.Join(b.st.Dir, "logs"), err)
		}
	}
	return nil
}

// waitFor polls cond until it returns nil, ctx ends or d passes; it
// returns cond's last error on timeout.
func waitFor(ctx context.Context, d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	delay := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v: %w", d, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// Impair changes the impairment of a lab link ("s1/wan1") and returns the
// relay's reply (new impairment and counters).
func Impair(ctx context.Context, st *State, link string, u relay.Update) (relay.Reply, error) {
	r, err := st.relay(link)
	if err != nil {
		return relay.Reply{}, err
	}
	return relay.Call(ctx, r.Socket, relay.Request{Op: "set", Update: &u})
}

// LinkStatus returns a relay's impairment and counters.
func LinkStatus(ctx context.Context, st *State, link string) (relay.Reply, error) {
	r, err := st.relay(link)
	if err != nil {
		return relay.Reply{}, err
	}
	return relay.Call(ctx, r.Socket, relay.Request{Op: "get"})
}

func (s *State) relay(link string) (RelayRecord, error) {
	want := strings.ReplaceAll(strings.TrimSpace(link), "-", "/")
	var names []string
	for _, r := range s.Relays {
		if r.Name == want {
			return r, nil
		}
		names = append(names, r.Name)
	}
	if len(names) == 0 {
		return RelayRecord{}, fmt.Errorf("link %q: this lab has no impairment relays (built without a relay command)", link)
	}
	return RelayRecord{}, fmt.Errorf("unknown link %q: use one of %s", link, strings.Join(names, ", "))
}

// Relay direction names: frames from the edge to the ISP (upload) and back.
const (
	DirUpload   = "edge->isp"
	DirDownload = "isp->edge"
)

// Direction maps "upload", "download" or "both" ("" too) to a relay
// direction name ("" for both).
func Direction(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "both":
		return "", nil
	case "upload", "up", DirUpload:
		return DirUpload, nil
	case "download", DirDownload:
		return DirDownload, nil
	}
	return "", fmt.Errorf("unknown direction %q: use upload, download or both", s)
}

// DescribeImpairment renders a relay's impairment, per direction when the
// two differ.
func DescribeImpairment(rep relay.Reply) string {
	if rep.Symmetric() {
		return rep.Impairment.String()
	}
	return "upload " + rep.Impairments[DirUpload].String() + "; download " + rep.Impairments[DirDownload].String()
}
