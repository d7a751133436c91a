package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMain lets the test binary act as trellisctl when re-executed, so the
// exit codes of the real process can be checked.
func TestMain(m *testing.M) {
	if os.Getenv("TRELLISCTL_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{args: []string{"--help"}, code: 0, inStdout: "trellisctl"},
		{args: []string{"frobnicate"}, code: 2, inStderr: "error: unknown command"},
		{args: []string{"devices", "list", "--nope"}, code: 2, inStderr: "error: unknown flag"},
		{args: []string{"whoami", "--server", "http://127.0.0.1:1"}, code: 1, inStderr: "error: not logged in"},
		{args: []string{"--access-key", "tak_x", "whoami", "--server", "http://127.0.0.1:1"}, code: 1, inStderr: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tt.args...)
			dir := t.TempDir()
			cmd.Env = append(os.Environ(), "TRELLISCTL_TEST_MAIN=1", "XDG_CONFIG_HOME="+dir, "HOME="+dir, "TRELLIS_ACCESS_KEY=")
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.inStdout) || !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("stdout %q, stderr %q; want %q / %q", stdout.String(), stderr.String(), tt.inStdout, tt.inStderr)
			}
		})
	}
}
