// Package e2e holds end-to-end tests that build the real binaries
// (trellis-manage, trellis-edge) and run them as processes on loopback.
//
//	go test ./e2e/            # builds the binaries into a temporary directory
//	go test -short ./e2e/     # skips them
package e2e
