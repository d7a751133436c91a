package dhcpd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// leaseFileVersion is the format of the lease file.
const leaseFileVersion = 1

// leaseFile is the JSON form of a server's leases on disk:
//
//	{"version":1,"interface":"lan0","leases":[{"mac":"52:54:00:12:34:56",
//	 "address":"192.168.1.100","hostname":"pc1","expires":"2026-11-26T12:00:00Z"}]}
type leaseFile struct {
	Version   int     `json:"version"`
	Interface string  `json:"interface"`
	Leases    []Lease `json:"leases"`
}

// LeaseFile is where the server of iface keeps its leases in dir.
func LeaseFile(dir, iface string) string { return filepath.Join(dir, iface+".json") }

// ReadLeaseFile returns the leases stored in a lease file.
func ReadLeaseFile(path string) ([]Lease, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f leaseFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("lease file %s: %w", path, err)
	}
	if f.Version != leaseFileVersion {
		return nil, fmt.Errorf("lease file %s: format version %d; this edge reads %d", path, f.Version, leaseFileVersion)
	}
	return f.Leases, nil
}

// load reads the lease file, keeping the unexpired leases that fit the
// configuration. An unreadable file is moved aside (never deleted) and
// the server starts without leases.
func (s *Server) load() error {
	leases, err := ReadLeaseFile(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("reading leases: %w", err)
		}
		aside := fmt.Sprintf("%s.bad-%d", s.file, s.now().Unix())
		if rerr := os.Rename(s.file, aside); rerr != nil {
			return fmt.Errorf("%w (and moving it aside failed: %v)", err, rerr)
		}
		s.log.Error("lease file unreadable; moved aside, starting without leases", "err", err, "moved_to", aside)
		return nil
	}
	now := s.now()
	dropped := 0
	for _, l := range leases {
		mac, err := ParseMAC(l.MAC)
		ok := err == nil && l.Address.Is4() && l.Expires.After(now)
		if ok {
			l.MAC = mac.String()
			st, isStatic := s.static[l.MAC]
			switch {
			case isStatic:
				ok = st.Address == l.Address
				l.Static = true
			default:
				ok = !l.Static && s.free(l.Address, l.MAC, now)
			}
			ok = ok && s.byMAC[l.MAC] == nil && s.byAddr[l.Address] == nil
		}
		if !ok {
			dropped++
			continue
		}
		l.Hostname = cleanHostname(l.Hostname)
		s.put(&record{Lease: l})
	}
	if dropped > 0 {
		s.log.Info("dropped stored leases that expired or no longer fit the configuration", "dropped", dropped, "kept", len(s.byMAC))
		s.save()
	}
	return nil
}

// save writes the acknowledged leases to the lease file atomically (a
// temporary file renamed over it). Errors are logged: serving goes on.
func (s *Server) save() {
	if s.file == "" {
		return
	}
	if err := s.write(); err != nil {
		s.log.Error("saving leases failed; they will be lost on restart", "file", s.file, "err", err)
	}
}

func (s *Server) write() error {
	f := leaseFile{Version: leaseFileVersion, Interface: s.cfg.Interface, Leases: s.leasesLocked(s.now())}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.file)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.file)
}
