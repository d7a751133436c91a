package firewall

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "firewall.json")

	m, err := New(Options{StateFile: path})
	if err != nil || len(m.owned) != 0 {
		t.Fatalf("no state file: %v, owned %v", err, m.owned)
	}
	m.owned = []PublicAddress{{Interface: "wan1", Address: netip.MustParseAddr("198.18.1.50")}}
	if err := m.save(); err != nil {
		t.Fatal(err)
	}
	m2, err := New(Options{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m2.owned, m.owned) {
		t.Errorf("reloaded %v, want %v", m2.owned, m.owned)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{StateFile: path}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt state file: %v, want an error saying so", err)
	}
}
