package lab

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
)

// Leftovers lists what a lab of the prefix still has on the host: its
// namespaces, links named after it in the host namespace, processes of
// procs still running, a lab nftables table in the host namespace and its
// state directory. After Down it must be empty.
func Leftovers(prefix, stateRoot string, procs ...ProcRecord) ([]string, error) {
	var left []string
	ns, err := ListNamespaces(prefix)
	if err != nil {
		return nil, err
	}
	for _, n := range ns {
		left = append(left, "namespace "+n)
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, prefix+"-") {
			left = append(left, "link "+l.Attrs().Name)
		}
	}
	for _, p := range procs {
		if p.Alive() {
			left = append(left, fmt.Sprintf("process %s of %s (pid %d)", p.Name, p.Node, p.PID))
		}
	}
	for _, ns := range ns {
		if pids, err := pidsInNamespace(ns); err == nil && len(pids) > 0 {
			left = append(left, fmt.Sprintf("processes %v in %s", pids, ns))
		}
	}
	tables, err := ListNFTables("")
	if err != nil {
		return nil, err
	}
	if slices.Contains(tables, NFTable) {
		left = append(left, "nftables table "+NFTable+" in the host namespace")
	}
	if _, err := os.Stat(StateDir(stateRoot, prefix)); !os.IsNotExist(err) {
		left = append(left, "state directory "+StateDir(stateRoot, prefix))
	}
	return left, nil
}
