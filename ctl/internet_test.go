package ctl

import (
	"slices"
	"strings"
	"testing"

	"github.com/trellis-sdwan/trellis/client"
)

// TestInternetCheckCommands: show, set (flags not given keep what is in
// force), --off, bad input refused by the server or before it, reset,
// against the real controller (started with checks off by default).
func TestInternetCheckCommands(t *testing.T) {
	m := startManage(t)
	admin := m.admin(t)
	r := admin.must("", "internet-check", "show")
	if !strings.Contains(r.stdout, "In force  off") || !strings.Contains(r.stdout, "the server's defaults") {
		t.Fatalf("show:\n%s", r.stdout)
	}
	v := jsonOut[client.InternetCheckView](t, admin.must("", "internet-check", "set", "--targets", "192.0.2.1, 192.0.2.2", "--interval", "20s", "-o", "json"))
	if !v.Custom || !slices.Equal(v.Settings.Targets, []string{"192.0.2.1", "192.0.2.2"}) || v.Settings.IntervalS != 20 || v.Settings.TimeoutMs != 1000 || v.Settings.FailRounds != 3 {
		t.Fatalf("set: %+v", v)
	}
	v = jsonOut[client.InternetCheckView](t, admin.must("", "internet-check", "set", "--fail-rounds", "5", "-o", "json"))
	if !slices.Equal(v.Settings.Targets, []string{"192.0.2.1", "192.0.2.2"}) || v.Settings.IntervalS != 20 || v.Settings.FailRounds != 5 {
		t.Fatalf("set --fail-rounds kept nothing else: %+v", v)
	}
	r = admin.must("", "internet-check", "show")
	if !strings.Contains(r.stdout, "ping 192.0.2.1, 192.0.2.2 every 20 s, 1000 ms timeout, unreachable after 5 failed rounds") || !strings.Contains(r.stdout, "the organization's own") {
		t.Fatalf("show after set:\n%s", r.stdout)
	}
	v = jsonOut[client.InternetCheckView](t, admin.must("", "internet-check", "set", "--off", "-o", "json"))
	if v.Settings.Targets == nil || len(v.Settings.Targets) != 0 || !v.Custom {
		t.Fatalf("--off: %+v", v)
	}
	admin.fails("invalid", "", "internet-check", "set", "--targets", "224.0.0.1")
	admin.fails("invalid", "", "internet-check", "set", "--interval", "1s", "--timeout", "1s")
	for _, args := range [][]string{{"internet-check", "set"}, {"internet-check", "set", "--off", "--targets", "1.1.1.1"}, {"internet-check", "set", "--interval", "1500ms"}} {
		if r := admin.run("", args...); r.code != ExitUsage {
			t.Errorf("%v: exit %d %q, want a usage error", args, r.code, r.stderr)
		}
	}
	admin.must("", "internet-check", "reset")
	if v := jsonOut[client.InternetCheckView](t, admin.must("", "internet-check", "show", "-o", "json")); v.Custom {
		t.Fatalf("after reset: %+v", v)
	}
}
