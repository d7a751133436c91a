// Package browser holds the browser tests of the trellis-manage web UI:
// a real manage (SQLite in a temporary directory, HTTPS with its
// self-signed certificate) started in-process, devices registered through
// the real registration endpoint and device channel, and headless
// Chromium driven by chromedp through login, approval, interface
// assignment, tunnel creation and the dashboard.
//
// The tests skip when no Chromium is found (TRELLIS_CHROMIUM, then
// chromium, chromium-browser, google-chrome on PATH; Debian: apt-get
// install chromium). Screenshots of every step are written as PNG to
// $TRELLIS_ARTIFACTS/screenshots when TRELLIS_ARTIFACTS is set, else to
// the test's temporary directory (kept only with -test.v in the log).
package browser
