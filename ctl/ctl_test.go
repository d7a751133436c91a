package ctl

import (
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/trellis-sdwan/trellis/client"
)

func TestUsageErrors(t *testing.T) {
	_, srv := startFake(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"unknown subcommand", []string{"devices", "frob"}, `unknown command "frob" for "trellisctl devices"`},
		{"unknown sub-subcommand", []string{"config", "frob"}, `unknown command "frob" for "trellisctl config"`},
		{"unknown flag", []string{"devices", "list", "--colour"}, "unknown flag"},
		{"too many args", []string{"devices", "get", "a", "b"}, "takes 1 argument"},
		{"missing arg", []string{"path-labels", "delete"}, "takes 1 argument"},
		{"bad output", []string{"-o", "yaml", "whoami"}, "output format"},
		{"bad limit", []string{"--server", srv.URL, "--access-key", "tak_test_key", "--org", "org-1", "devices", "list", "--limit", "5000"}, "--limit"},
		{"bad filter", []string{"--server", srv.URL, "--access-key", "tak_test_key", "--org", "org-1", "devices", "list", "--filter", "nokey"}, "field=value"},
		{"nothing to change", []string{"devices", "update", "dev-1"}, "nothing to change"},
		{"bad role", []string{"members", "add", "x@y.z", "--role", "admin"}, "owner, manager or viewer"},
		{"bad label type", []string{"path-labels", "create", "LTE", "--type", "wifi"}, "tunnel or dia"},
		{"bad colour", []string{"path-labels", "create", "LTE", "--color", "red"}, "#rrggbb"},
		{"no server", []string{"whoami"}, "no server"},
		{"config key", []string{"config", "set", "colour", "blue"}, "unknown key"},
		{"no org", []string{"--server", srv.URL, "--access-key", "tak_test_key", "devices", "list"}, "no organization selected"},
		{"expiry in the past", []string{"access-keys", "create", "ci", "--expires", "-5h"}, "future"},
		{"logout with a key", []string{"--access-key", "tak_x", "logout"}, "access key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.run("", tt.args...)
			if r.code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", r.code, ExitUsage, r.stderr)
			}
			if !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q, want error: ...%s...", r.stderr, tt.want)
			}
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"--help"}, {}, {"devices"}, {"devices", "--help"}, {"totp"}} {
		r := e.run("", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestCompletion(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "completion", "bash")
	if r.code != 0 || !strings.Contains(r.stdout, "__trellisctl") {
		t.Errorf("completion bash: exit %d, %.200q", r.code, r.stdout)
	}
}

func TestLoginWhoamiLogout(t *testing.T) {
	f, srv := startFake(t)
	e := newEnv(t)

	if r := e.run("", "--server", srv.URL, "whoami"); r.code != ExitError || !strings.Contains(r.stderr, "not logged in") {
		t.Fatalf("whoami before login: exit %d, %q", r.code, r.stderr)
	}
	r := e.run("wrong\n", "login", "--server", srv.URL, "ada@example.net")
	if r.code != ExitError || !strings.Contains(r.stderr, "error: unauthorized: wrong email or password") {
		t.Fatalf("wrong password: exit %d, %q", r.code, r.stderr)
	}
	r = e.must("s3cret\n", "login", "--server", srv.URL, "ada@example.net")
	if !strings.Contains(r.stdout, "Logged in to "+srv.URL+" as ada@example.net") {
		t.Errorf("login said %q", r.stdout)
	}
	st, err := os.Stat(e.configFile())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", st.Mode().Perm())
	}
	cfg := e.readConfig()
	if cfg.Server != srv.URL || !strings.HasPrefix(cfg.Token, "tss_") || cfg.Email != "ada@example.net" {
		t.Errorf("config after login: %+v", cfg)
	}
	if cfg.OrgID != "" {
		t.Errorf("two organizations visible, yet %q was selected", cfg.OrgID)
	}

	r = e.must("", "whoami")
	for _, want := range []string{"User:", "ada@example.net", "Auth:", "session", "owner", "SCOPE_ID"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("whoami output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = e.must("", "whoami", "-o", "json")
	var me client.Me
	if err := json.Unmarshal([]byte(r.stdout), &me); err != nil || me.User.Email != "ada@example.net" {
		t.Errorf("whoami -o json: %v %q", err, r.stdout)
	}

	r = e.must("", "config", "show")
	if strings.Contains(r.stdout, cfg.Token) || !strings.Contains(r.stdout, "saved") {
		t.Errorf("config show leaks or misses the token: %q", r.stdout)
	}

	// Logging in again ends the session it replaces.
	e.must("s3cret\n", "login", "ada@example.net")
	if len(f.sessions) != 1 {
		t.Errorf("%d sessions on the server after a second login, want 1", len(f.sessions))
	}

	// The session is never sent to another server.
	_, other := startFake(t)
	if r := e.run("", "--server", other.URL, "whoami"); r.code != ExitError || !strings.Contains(r.stderr, "not logged in to "+other.URL) {
		t.Errorf("whoami on another server: exit %d %q", r.code, r.stderr)
	}
	e.must("", "--server", srv.URL+"/", "whoami") // the same server, spelled differently

	e.must("", "logout")
	if cfg := e.readConfig(); cfg.Token != "" || cfg.Server != srv.URL {
		t.Errorf("config after logout: %+v", cfg)
	}
	if len(f.sessions) != 0 {
		t.Errorf("server still has %d sessions after logout", len(f.sessions))
	}
	if r := e.run("", "whoami"); r.code != ExitError || !strings.Contains(r.stderr, "not logged in") {
		t.Errorf("whoami after logout: exit %d, %q", r.code, r.stderr)
	}
}

func TestLoginTOTP(t *testing.T) {
	f, srv := startFake(t)
	f.mfa = true
	e := newEnv(t)
	r := e.run("s3cret\n000000\n", "login", "--server", srv.URL, "--email", "ada@example.net")
	if r.code != ExitError || !strings.Contains(r.stderr, "second factor: unauthorized: wrong code (field code)") {
		t.Fatalf("wrong code: exit %d, %q", r.code, r.stderr)
	}
	r = e.must("s3cret\n123456\n", "login", "--server", srv.URL, "--email", "ada@example.net")
	if !strings.Contains(r.stderr, "TOTP code: ") {
		t.Errorf("no TOTP prompt on stderr: %q", r.stderr)
	}
	e.must("", "whoami")
	if r := e.run("", "login", "--server", srv.URL, "--password-stdin", "ada@example.net"); r.code != ExitError || !strings.Contains(r.stderr, "reading the password from stdin: no input") {
		t.Errorf("empty stdin: exit %d %q", r.code, r.stderr)
	}
	e.must("s3cret\n", "login", "--server", srv.URL, "--password-stdin", "--totp", "123456", "ada@example.net")
	e.must("", "whoami")
}

func TestLoginPasswordFromEnv(t *testing.T) {
	_, srv := startFake(t)
	e := newEnv(t)
	e.vars["TRELLIS_PASSWORD"] = "s3cret"
	e.vars["TRELLIS_SERVER"] = srv.URL
	e.must("", "login", "ada@example.net")
	if cfg := e.readConfig(); cfg.Server != srv.URL {
		t.Errorf("server from TRELLIS_SERVER not saved: %+v", cfg)
	}
}

func TestOrgUseAndTables(t *testing.T) {
	f, srv := startFake(t)
	e := newEnv(t)
	e.must("s3cret\n", "login", "--server", srv.URL, "ada@example.net")

	r := e.run("", "org", "use", "Initech")
	if r.code != ExitError || !strings.Contains(r.stderr, `no organization with id or name "Initech"`) {
		t.Errorf("org use of a missing org: exit %d %q", r.code, r.stderr)
	}
	if r := e.run("", "org", "current"); r.code != ExitError || !strings.Contains(r.stderr, "no organization selected") {
		t.Errorf("org current with none: exit %d %q", r.code, r.stderr)
	}
	e.must("", "config", "set", "org", "org-2") // by id
	if cfg := e.readConfig(); cfg.OrgID != "org-2" || cfg.OrgName != "Globex" {
		t.Errorf("config set org: %+v", cfg)
	}
	r = e.must("", "org", "use", "acme") // case-insensitive name
	if !strings.Contains(r.stdout, "Using organization Acme (org-1)") {
		t.Errorf("org use said %q", r.stdout)
	}
	if cfg := e.readConfig(); cfg.OrgID != "org-1" || cfg.OrgName != "Acme" {
		t.Errorf("config org %+v", cfg)
	}

	r = e.must("", "path-labels", "list")
	want := "" +
		"ID     NAME       TYPE    COLOR    DESCRIPTION\n" +
		"lbl-1  MPLS       tunnel  #112233  -\n" +
		"lbl-2  Broadband  tunnel  #445566  fibre line\n"
	if r.stdout != want {
		t.Errorf("table:\n%s\nwant:\n%s", r.stdout, want)
	}

	r = e.must("", "path-labels", "list", "-o", "json")
	var labels []client.PathLabel
	if err := json.Unmarshal([]byte(r.stdout), &labels); err != nil || len(labels) != 2 || labels[1].Description != "fibre\tline" {
		t.Errorf("json list: %v %q", err, r.stdout)
	}

	if strings.Count(r.stdout, `"x_future": "kept"`) != 2 {
		t.Errorf("json list does not pass the server's objects through:\n%s", r.stdout)
	}
	r = e.must("", "path-labels", "get", "lbl-1", "-o", "json")
	if !strings.Contains(r.stdout, `"x_future": "kept"`) || jsonOut[client.PathLabel](t, r).Name != "MPLS" {
		t.Errorf("json get does not pass the server's object through:\n%s", r.stdout)
	}
	r = e.must("", "path-labels", "get", "MPLS")
	if !strings.Contains(r.stdout, "lbl-1") {
		t.Errorf("get by name: %q", r.stdout)
	}
	r = e.must("", "path-labels", "create", "LTE", "--type", "dia", "--color", "#abcdef")
	if !strings.Contains(r.stdout, "LTE") || !strings.Contains(r.stdout, "dia") {
		t.Errorf("create: %q", r.stdout)
	}
	r = e.run("", "path-labels", "create", "LTE", "--type", "dia")
	if r.code != ExitError || r.stderr != "error: conflict: a path label named LTE exists (field name)\n" {
		t.Errorf("conflict: exit %d %q", r.code, r.stderr)
	}

	// --org overrides the selection for one command; names resolve too.
	r = e.must("", "--org", "Globex", "path-labels", "list", "-o", "json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("Globex labels: %q", r.stdout)
	}

	r = e.must("", "devices", "list", "--approval", "pending", "--limit", "1", "--sort", "-name")
	if !strings.Contains(r.stdout, "paris-1") || !strings.Contains(r.stdout, "APPROVAL") {
		t.Errorf("devices list: %q", r.stdout)
	}
	last := f.requests[len(f.requests)-1]
	if last != "GET /api/v1/organizations/org-1/devices?approval=pending&limit=1&sort=-name" {
		t.Errorf("devices list sent %q", last)
	}

	r = e.run("", "devices", "delete", "dev-1")
	if r.code != ExitError || r.stderr != "error: forbidden: viewer cannot delete devices\n" {
		t.Errorf("forbidden: exit %d %q", r.code, r.stderr)
	}
}

func TestListPagingNote(t *testing.T) {
	f, srv := startFake(t)
	for i := 0; i < 7; i++ {
		f.labels["org-1"] = append(f.labels["org-1"], client.PathLabel{ID: "x" + string(rune('a'+i)), Name: "n" + string(rune('a'+i)), Type: "dia"})
	}
	e := newEnv(t)
	e.vars["TRELLIS_ACCESS_KEY"] = "tak_test_key"
	e.vars["TRELLIS_ORG"] = "org-1"
	r := e.must("", "--server", srv.URL, "path-labels", "list", "--limit", "4")
	if !strings.Contains(r.stderr, "1-4 of 9 shown") || strings.Count(r.stdout, "\n") != 5 {
		t.Errorf("paged list: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = e.must("", "--server", srv.URL, "path-labels", "list", "--limit", "4", "--all")
	if r.stderr != "" || strings.Count(r.stdout, "\n") != 10 {
		t.Errorf("--all: stdout %q stderr %q", r.stdout, r.stderr)
	}
}

func TestVerbose(t *testing.T) {
	_, srv := startFake(t)
	e := newEnv(t)
	e.vars["TRELLIS_ACCESS_KEY"] = "tak_test_key"
	r := e.must("", "--server", srv.URL, "-v", "--org", "org-1", "devices", "list")
	if !strings.Contains(r.stderr, "method=GET") || !strings.Contains(r.stderr, "/api/v1/organizations/org-1/devices") ||
		!strings.Contains(r.stderr, "status=200") || strings.Contains(r.stderr, "tak_test_key") {
		t.Errorf("verbose log: %q", r.stderr)
	}
	if r := e.must("", "--server", srv.URL, "--org", "org-1", "devices", "list"); r.stderr != "" {
		t.Errorf("quiet run wrote to stderr: %q", r.stderr)
	}
}

func TestAccessKeyEnv(t *testing.T) {
	_, srv := startFake(t)
	e := newEnv(t)
	e.vars["TRELLIS_ACCESS_KEY"] = "tak_test_key"
	r := e.must("", "--server", srv.URL, "whoami", "-o", "json")
	if !strings.Contains(r.stdout, `"type": "access_key"`) {
		t.Errorf("whoami with an access key: %q", r.stdout)
	}
	r = e.run("", "--server", srv.URL, "--access-key", "tak_wrong", "whoami")
	if r.code != ExitError || !strings.Contains(r.stderr, "access key is unknown, expired or revoked") {
		t.Errorf("wrong key: exit %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(e.configFile()); err == nil {
		t.Error("an access-key run wrote a config file")
	}
}

func TestFingerprintPinning(t *testing.T) {
	f := newFakeAPI()
	srv := httptest.NewUnstartedServer(f.handler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	fp := client.CertFingerprint(srv.Certificate())
	e := newEnv(t)

	r := e.run("s3cret\n", "login", "--server", srv.URL, "ada@example.net")
	if r.code != ExitError || !strings.Contains(r.stderr, "not signed by a trusted CA") || !strings.Contains(r.stderr, "--fingerprint "+fp) {
		t.Fatalf("unpinned login: exit %d %q", r.code, r.stderr)
	}
	r = e.run("s3cret\n", "login", "--server", srv.URL, "--fingerprint", strings.Repeat("00", 32), "ada@example.net")
	if r.code != ExitError || !strings.Contains(r.stderr, "does not match the pinned") {
		t.Fatalf("wrong pin: exit %d %q", r.code, r.stderr)
	}
	r = e.must("", "--server", srv.URL, "fingerprint")
	if !strings.HasPrefix(r.stdout, fp+"\n") {
		t.Errorf("fingerprint printed %q, want %s", r.stdout, fp)
	}
	e.must("s3cret\n", "login", "--server", srv.URL, "--fingerprint", client.FormatFingerprint(fp), "ada@example.net")
	if cfg := e.readConfig(); cfg.Fingerprint != fp {
		t.Errorf("saved fingerprint %q, want %q", cfg.Fingerprint, fp)
	}
	// Later commands use the saved pin.
	e.must("", "whoami")
}

func TestConfigCommands(t *testing.T) {
	e := newEnv(t)
	if r := e.must("", "config", "path"); strings.TrimSpace(r.stdout) != e.configFile() {
		t.Errorf("config path %q, want %q", r.stdout, e.configFile())
	}
	e.must("", "config", "set", "server", "manage.example.net:8443")
	e.must("", "config", "set", "fingerprint", "AB:"+strings.Repeat("cd:", 30)+"EF")
	e.must("", "config", "set", "insecure", "true")
	cfg := e.readConfig()
	if cfg.Server != "https://manage.example.net:8443" || cfg.Fingerprint != "ab"+strings.Repeat("cd", 30)+"ef" || !cfg.Insecure {
		t.Errorf("config %+v", cfg)
	}
	if r := e.run("", "config", "set", "fingerprint", "abc"); r.code != ExitError {
		t.Errorf("bad fingerprint accepted: %d", r.code)
	}
	e.must("", "config", "unset", "insecure")
	if cfg := e.readConfig(); cfg.Insecure {
		t.Error("insecure still set")
	}
	e.must("", "config", "set", "server", "https://manage.example.net:8443/") // the same server
	if cfg := e.readConfig(); cfg.Fingerprint == "" {
		t.Error("setting the same server dropped the pin")
	}
	e.must("", "config", "set", "server", "https://other.example.net")
	if cfg := e.readConfig(); cfg.Fingerprint != "" || cfg.Server != "https://other.example.net" {
		t.Errorf("a new server kept the old pin: %+v", cfg)
	}
	os.WriteFile(e.configFile(), []byte("{not json"), 0o600)
	if r := e.run("", "config", "show"); r.code != ExitError || !strings.Contains(r.stderr, "not valid JSON") {
		t.Errorf("corrupt config: exit %d %q", r.code, r.stderr)
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		explicit string
		env      map[string]string
		want     string
	}{
		{explicit: "/x/c.json", want: "/x/c.json"},
		{env: map[string]string{"TRELLIS_CONFIG": "/y/c.json", "XDG_CONFIG_HOME": "/xdg"}, want: "/y/c.json"},
		{env: map[string]string{"XDG_CONFIG_HOME": "/xdg", "HOME": "/home/a"}, want: "/xdg/trellis/ctl.json"},
		{env: map[string]string{"XDG_CONFIG_HOME": "relative", "HOME": "/home/a"}, want: "/home/a/.config/trellis/ctl.json"},
		{env: map[string]string{"HOME": "/home/a"}, want: "/home/a/.config/trellis/ctl.json"},
	}
	for _, tt := range tests {
		got, err := configPath(tt.explicit, func(k string) string { return tt.env[k] })
		if err != nil || got != tt.want {
			t.Errorf("configPath(%q, %v) = %q, %v; want %q", tt.explicit, tt.env, got, err, tt.want)
		}
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{in: "", want: ""},
		{in: "720h", want: "2026-12-25T12:00:00Z"},
		{in: "2027-01-01T00:00:00Z", want: "2027-01-01T00:00:00Z"},
		{in: "2020-01-01T00:00:00Z", wantErr: true},
		{in: "0s", wantErr: true},
		{in: "tomorrow", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseExpiry(tt.in, now)
		if tt.wantErr {
			if err == nil {
				t.Errorf("parseExpiry(%q) = %v, want an error", tt.in, got)
			}
			continue
		}
		s := ""
		if got != nil {
			s = got.Format(time.RFC3339)
		}
		if err != nil || s != tt.want {
			t.Errorf("parseExpiry(%q) = %q, %v; want %q", tt.in, s, err, tt.want)
		}
	}
}

func TestCell(t *testing.T) {
	for in, want := range map[string]string{"": "-", "a\tb": "a b", "x\ny": "x y", "ok": "ok"} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRelativeTime(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "", want: ""},
		{in: "24h", want: "2026-11-24T12:00:00Z"},
		{in: "90m", want: "2026-11-25T10:30:00Z"},
		{in: "2026-11-01T00:00:00Z", want: "2026-11-01T00:00:00Z"},
		{in: "yesterday", want: "yesterday"}, // the server refuses it with a clear message
		{in: "-1h", wantErr: true},
	}
	for _, tt := range tests {
		got, err := relativeTime(tt.in, now)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("relativeTime(%q) = %q, %v; want %q (error %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
