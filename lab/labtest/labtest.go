// Package labtest builds trellis-lab topologies inside Go tests: a random
// prefix per lab, impairment relays run by the test binary itself, and
// removal with a check that nothing is left, even when the test fails.
//
// A test package using it needs this TestMain, so that the re-executed test
// binary can act as a relay:
//
//	func TestMain(m *testing.M) { labtest.Main(m) }
package labtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/lab"
	"github.com/trellis-sdwan/trellis/lab/relay"
)

// relayEnv marks a test binary re-executed as a relay.
const relayEnv = "TRELLIS_LABTEST_RELAY"

// Main runs m, or a relay when the test binary was re-executed as one.
func Main(m *testing.M) {
	if os.Getenv(relayEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		err := relay.Command(ctx, os.Args[1:], os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// NeedRoot skips the test unless it runs as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces (CI runs as root)")
	}
}

// Prefix returns a fresh "tt<4 hex>" prefix, so labs of concurrent tests
// and a running `trellis-lab` never clash.
func Prefix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "tt" + hex.EncodeToString(b)
}

// RelayCommand runs this test binary as a relay (see Main).
func RelayCommand(t testing.TB) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{"/usr/bin/env", relayEnv + "=1", exe}
}

// Up builds top under a fresh prefix with relays on every WAN link (it
// skips the test when not root). At the end of the test the lab is taken
// down and the test fails if anything of it is left: namespace, link,
// process (also those started later with Lab.Start), nftables table or
// state.
func Up(t testing.TB, top lab.Topology) *lab.Lab {
	t.Helper()
	NeedRoot(t)
	prefix := Prefix(t)
	plan, err := lab.NewPlan(prefix, top)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	var l *lab.Lab
	t.Cleanup(func() {
		var procs []lab.ProcRecord
		if l != nil {
			procs = l.State.Processes
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := lab.Down(ctx, prefix, root); err != nil {
			t.Errorf("lab down: %v", err)
		}
		left, err := lab.Leftovers(prefix, root, procs...)
		if err != nil {
			t.Errorf("checking for leftovers: %v", err)
		}
		for _, x := range left {
			t.Errorf("lab left behind: %s", x)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, err = lab.Up(ctx, plan, lab.Options{StateRoot: root, RelayCommand: RelayCommand(t)})
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	return l
}

// NS returns the kernel namespace name of a lab node ("s1/h1").
func NS(t testing.TB, l *lab.Lab, node string) string {
	t.Helper()
	n, ok := l.Plan.Node(node)
	if !ok {
		t.Fatalf("the lab has no node %q", node)
	}
	return n.NS
}

// WaitFor polls cond until it returns nil or d passes; then the test fails
// with cond's last error.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	delay := 5 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 250*time.Millisecond)
	}
}
