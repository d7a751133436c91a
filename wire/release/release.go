// Package release names the Trellis release a binary is built from. manage
// and the edge both read it, so manage can tell an edge that is older than
// itself ("software outdated") without the two versions drifting apart.
package release

// Version is the release of this source tree (semantic versioning).
const Version = "0.1.0"
