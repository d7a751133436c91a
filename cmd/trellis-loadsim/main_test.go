package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestMain lets the test binary serve as the manage child, as the real
// binary does.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runManage(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestSmallRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a manage child")
	}
	var out bytes.Buffer
	cfg, err := parseFlags([]string{"--n", "20", "--concurrency", "4"})
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), cfg, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"trellis-loadsim --n 20", "| registration | 20 in", "KiB/device", "config at all 20"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"--n", "0"}, {"--n", "70000"}, {"--concurrency", "0"}, {"--manage-url", "https://x"}, {"extra"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestEdgeIPsDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := range 60000 {
		ip := edgeIP(i).String()
		if seen[ip] || !strings.HasPrefix(ip, "127.") || strings.HasSuffix(ip, ".0") {
			t.Fatalf("edge %d: address %s reused or invalid", i, ip)
		}
		seen[ip] = true
	}
}
