package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// DefaultStateRoot holds one directory per lab prefix.
const DefaultStateRoot = "/run/trellis-lab"

// ProcRecord is a process the lab started.
type ProcRecord struct {
	Name string `json:"name"`
	Node string `json:"node"`
	NS   string `json:"ns"`
	PID  int    `json:"pid"`
	// Start is the process start time (clock ticks since boot, field 22 of
	// /proc/PID/stat) so a recycled PID is never mistaken for ours.
	Start uint64   `json:"start"`
	Argv  []string `json:"argv"`
	Log   string   `json:"log"`
}

// RelayRecord is an impairment relay and its control socket.
type RelayRecord struct {
	Name   string `json:"name"`
	NS     string `json:"ns"`
	Socket string `json:"socket"`
}

// State is everything a lab made, written to <state dir>/state.json as it
// is made, so that Down can remove it even after a crash half-way.
type State struct {
	Prefix     string        `json:"prefix"`
	Dir        string        `json:"dir"`
	Created    time.Time     `json:"created"`
	Complete   bool          `json:"complete"`
	Topology   Topology      `json:"topology"`
	Namespaces []string      `json:"namespaces"`
	Processes  []ProcRecord  `json:"processes"`
	Relays     []RelayRecord `json:"relays"`
}

// StateDir is the state directory of a prefix under root ("" = default).
func StateDir(root, prefix string) string {
	if root == "" {
		root = DefaultStateRoot
	}
	return filepath.Join(root, prefix)
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// Save writes the state atomically.
func (s *State) Save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding lab state: %w", err)
	}
	tmp := statePath(s.Dir) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	if err := os.Rename(tmp, statePath(s.Dir)); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	return nil
}

// ErrNoLab is returned by LoadState when no lab state exists.
var ErrNoLab = errors.New("no lab is up (no state file)")

// LoadState reads the state of the lab in dir.
func LoadState(dir string) (*State, error) {
	data, err := os.ReadFile(statePath(dir))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, ErrNoLab
		}
		return nil, fmt.Errorf("reading lab state: %w", err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("lab state %s is corrupt (run `trellis-lab down` to clean up by prefix): %w", statePath(dir), err)
	}
	s.Dir = dir
	return &s, nil
}
