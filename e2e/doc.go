// Package e2e holds end-to-end tests that build the real binaries
// (trellis-manage, trellis-edge) and run them as processes on loopback.
//
//	go test ./e2e/            # builds the binaries into a temporary directory
//	go test -short ./e2e/     # skips them
//	TRELLIS_E2E_RACE=1 go test -count=1 ./e2e/   # binaries built with -race
//
// The binaries are built from the working tree at each run; use -count=1,
// since the test cache does not know about them.
package e2e
