package hostnet

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
)

// Kernel settings of the network namespace the edge runs in.
const (
	ipForwardPath = "/proc/sys/net/ipv4/ip_forward"
	// rpFilterPath: the effective reverse-path filter of an interface is
	// the maximum of "all" and its own; 2 (loose) makes every interface
	// loose. Strict (1), on "all", an interface or the default for new
	// ones, drops replies that come back on another WAN than the main
	// table's best route (multi-WAN, path selection) and packets through a
	// tunnel from a peer's WAN address; then "all" is set to 2.
	rpFilterPath = "/proc/sys/net/ipv4/conf/all/rp_filter"
	confDir      = "/proc/sys/net/ipv4/conf"
)

// sysctl is a setting the host changed and the value it found before.
type sysctl struct {
	Path     string `json:"path"`
	Previous string `json:"previous"`
}

func readSysctl(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeSysctl(path, v string) error {
	if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing %s=%s: %w", path, v, err)
	}
	return nil
}

// forwardSettings are the values forwarding needs, each with the values
// that already satisfy it.
// A setting that is not required (rp_filter) only warns when it cannot be
// changed (read-only /proc/sys in a container).
var forwardSettings = []struct {
	path, value string
	ok          func(string) bool
	required    bool
}{
	{ipForwardPath, "1", func(v string) bool { return v == "1" }, true},
	{rpFilterPath, "2", func(v string) bool { return v == "2" || (v == "0" && !anyStrictRPFilter()) }, false},
}

// anyStrictRPFilter reports whether an interface (or the default for new
// ones, e.g. the data plane's TUN) filters strictly.
func anyStrictRPFilter() bool {
	entries, err := os.ReadDir(confDir)
	if err != nil {
		return true
	}
	for _, e := range entries {
		if e.Name() == "all" {
			continue
		}
		if v, err := readSysctl(filepath.Join(confDir, e.Name(), "rp_filter")); err == nil && v == "1" {
			return true
		}
	}
	return false
}

// setForwarding turns forwarding on (recording what it changed in changed)
// or restores what it changed. It returns the new record.
func setForwarding(on bool, changed []sysctl, log *slog.Logger) ([]sysctl, error) {
	if on {
		for _, s := range forwardSettings {
			cur, err := readSysctl(s.path)
			if err == nil && s.ok(cur) {
				continue
			}
			if err == nil {
				err = writeSysctl(s.path, s.value)
			}
			if err != nil && s.required {
				return changed, fmt.Errorf("enabling forwarding (set it in the host's sysctl configuration if /proc/sys is read-only here): %w", err)
			}
			if err != nil {
				log.Warn("cannot loosen the reverse-path filter; replies arriving on another WAN than the best default route may be dropped", "err", err)
				continue
			}
			log.Info("kernel setting changed", "path", s.path, "from", cur, "to", s.value)
			if !hasPath(changed, s.path) {
				changed = append(changed, sysctl{Path: s.path, Previous: cur})
			}
		}
		return changed, nil
	}
	var keep []sysctl
	var firstErr error
	for _, c := range changed {
		if err := writeSysctl(c.Path, c.Previous); err != nil {
			keep = append(keep, c)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return keep, firstErr
}

func hasPath(list []sysctl, path string) bool {
	for _, s := range list {
		if s.Path == path {
			return true
		}
	}
	return false
}
