package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Config is what trellisctl remembers between runs, in
// $XDG_CONFIG_HOME/trellis/ctl.json (mode 0600, it holds a session token).
type Config struct {
	Server      string `json:"server,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Insecure    bool   `json:"insecure,omitempty"`
	CACert      string `json:"ca_cert,omitempty"`
	Token       string `json:"token,omitempty"`
	Email       string `json:"email,omitempty"`
	OrgID       string `json:"org,omitempty"`
	OrgName     string `json:"org_name,omitempty"`
}

// configPath picks the config file: the explicit one, $TRELLIS_CONFIG,
// $XDG_CONFIG_HOME/trellis/ctl.json or ~/.config/trellis/ctl.json.
func configPath(explicit string, getenv func(string) string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if p := getenv("TRELLIS_CONFIG"); p != "" {
		return p, nil
	}
	if x := getenv("XDG_CONFIG_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "trellis", "ctl.json"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory to keep the config in: set XDG_CONFIG_HOME or --config: %w", err)
		}
		home = h
	}
	return filepath.Join(home, ".config", "trellis", "ctl.json"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	var c Config
	if len(strings.TrimSpace(string(data))) == 0 {
		return &c, nil
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("config file %s is not valid JSON (fix or delete it): %w", path, err)
	}
	return &c, nil
}

// saveConfig writes the config atomically with mode 0600 (directory 0700).
func saveConfig(path string, c *Config) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating config directory: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".ctl-*.json")
	if err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	return nil
}
