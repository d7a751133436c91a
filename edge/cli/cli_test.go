package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/edge/agent"
	"github.com/trellis-sdwan/trellis/edge/state"
	"github.com/trellis-sdwan/trellis/wire/devproto"
)

func run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	sd, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	doc := `{"name":"edge-1","routes":[{"destination":"10.9.0.0/16","gateway":"192.0.2.254"}],"tunnels":[]}`
	version := agent.DocVersion([]byte(doc))
	if err := sd.SaveDoc(state.Doc{Version: version, Doc: json.RawMessage(doc), Applied: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := sd.SaveCredential(state.Credential{DeviceID: "dev-1", OrgID: "org-1", ManageURL: "https://127.0.0.1:1", Credential: "tdc_x"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"unknown command", []string{"bogus"}, ExitUsage, ""},
		{"bad log level", []string{"run", "--log-level", "loud", "--state-dir", dir}, ExitUsage, ""},
		{"bad machine id", []string{"run", "--machine-id", "a b", "--state-dir", dir}, ExitUsage, ""},
		{"extra argument", []string{"status", "extra", "--state-dir", dir}, ExitUsage, ""},
		{"show nothing", []string{"show", "--state-dir", dir}, ExitUsage, ""},
		{"show unknown", []string{"show", "bogus", "--state-dir", dir}, ExitUsage, ""},
		{"unknown flag", []string{"status", "--bogus"}, ExitUsage, ""},
		{"status from files", []string{"status", "--state-dir", dir}, ExitOK, "agent not running"},
		{"status json", []string{"status", "--json", "--state-dir", dir}, ExitOK, `"device_id": "dev-1"`},
		{"show config", []string{"show", "config", "--state-dir", dir}, ExitOK, `"name": "edge-1"`},
		{"show routes", []string{"show", "routes", "--state-dir", dir}, ExitOK, "gateway 192.0.2.254"},
		{"show interfaces", []string{"show", "interfaces", "--state-dir", dir}, ExitOK, "NAME"},
		{"show tunnels needs the agent", []string{"show", "tunnels", "--state-dir", dir}, ExitError, ""},
		{"reset needs --yes", []string{"reset", "--state-dir", dir}, ExitUsage, ""},
		{"reset", []string{"reset", "--yes", "--state-dir", dir}, ExitOK, "removed"},
		{"status after reset", []string{"status", "--json", "--state-dir", dir}, ExitOK, `"registered": false`},
		{"show config after reset", []string{"show", "config", "--state-dir", dir}, ExitError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(tc.args...)
			if code != tc.code || !strings.Contains(out, tc.contains) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, state.CredentialFile)); !os.IsNotExist(err) {
		t.Fatalf("credential still there after reset: %v", err)
	}
}

func TestInternetLines(t *testing.T) {
	since := time.Date(2026, 11, 25, 15, 2, 11, 0, time.UTC)
	got := internetLines(map[string]devproto.InternetStatus{
		"wan1": {Reachable: false, Error: "no answer from 1.1.1.1", LossPct: 100, Since: since},
		"wan0": {Reachable: true, Target: "8.8.8.8", RTTMillis: 12.34, LossPct: 10},
	})
	want := []string{
		"internet wan0:\treachable, 12.3 ms via 8.8.8.8, loss 10 %",
		"internet wan1:\tUNREACHABLE: no answer from 1.1.1.1 (since 2026-11-25T15:02:11Z)",
	}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
	if l := internetLines(nil); len(l) != 0 {
		t.Errorf("no checks: got %q", l)
	}
}
