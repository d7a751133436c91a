package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// NodeDir is a node's own directory under the state directory (for its
// configuration, tokens, databases); Up creates it for every node.
func (s *State) NodeDir(node string) string {
	return filepath.Join(s.Dir, "nodes", strings.ReplaceAll(node, "/", "-"))
}

// Open returns the lab that is up with the given prefix, from its state.
func Open(stateRoot, prefix string) (*Lab, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	st, err := LoadState(StateDir(stateRoot, prefix))
	if err != nil {
		return nil, err
	}
	plan, err := NewPlan(st.Prefix, st.Topology)
	if err != nil {
		return nil, fmt.Errorf("lab state holds an invalid topology: %w", err)
	}
	return &Lab{Plan: plan, State: st}, nil
}

// Expand replaces the Process placeholders for a node.
func (l *Lab) Expand(n Node, s string) string {
	return strings.NewReplacer(
		"{node}", n.Name,
		"{ns}", n.NS,
		"{site}", strconv.Itoa(n.Site),
		"{dir}", l.State.NodeDir(n.Name),
		"{state}", l.State.Dir,
		"{manage}", l.Plan.ManageAddr.String(),
	).Replace(s)
}

// Start starts p in the node's namespace now and records it in the state,
// so Down stops it. Up starts the topology's Run lists this way; programs
// that must start in order (manage, then a token, then the edges) call it
// themselves after Up.
func (l *Lab) Start(node string, p Process) (ProcRecord, error) {
	n, ok := l.Plan.Node(node)
	if !ok {
		return ProcRecord{}, fmt.Errorf("unknown node %q", node)
	}
	if err := validateProcs(node, []Process{p}); err != nil {
		return ProcRecord{}, err
	}
	argv := make([]string, len(p.Argv))
	for i, a := range p.Argv {
		argv[i] = l.Expand(n, a)
	}
	env := make([]string, len(p.Env))
	for i, e := range p.Env {
		env[i] = l.Expand(n, e)
	}
	dir := l.State.NodeDir(n.Name)
	if p.Dir != "" {
		dir = l.Expand(n, p.Dir)
	}
	if err := os.MkdirAll(l.State.NodeDir(n.Name), 0o755); err != nil {
		return ProcRecord{}, fmt.Errorf("creating the directory of %s: %w", n.Name, err)
	}
	logPath := filepath.Join(l.State.Dir, "logs", strings.ReplaceAll(n.Name, "/", "-")+"-"+p.Name+".log")
	rec, err := startInNamespace(n.NS, p.Name, n.Name, argv, env, dir, logPath)
	if rec.PID > 0 {
		l.mu.Lock()
		l.State.Processes = append(l.State.Processes, rec)
		serr := l.State.Save()
		l.mu.Unlock()
		err = errors.Join(err, serr)
	}
	return rec, err
}

// Stop stops the processes named name that were started in node (SIGTERM,
// then SIGKILL after grace) and reports how many it stopped.
func (l *Lab) Stop(ctx context.Context, node, name string, grace time.Duration) (int, error) {
	l.mu.Lock()
	var pids []int
	for _, p := range l.State.Processes {
		if p.Node == node && p.Name == name && p.Alive() {
			pids = append(pids, p.PID)
		}
	}
	l.mu.Unlock()
	if left := terminate(ctx, pids, grace); len(left) > 0 {
		return len(pids) - len(left), fmt.Errorf("processes %v of %s did not exit", left, node)
	}
	// Stopped on purpose: forget them, so status does not report them as
	// exited and a later Start of the same name is the only record.
	l.mu.Lock()
	defer l.mu.Unlock()
	kept := l.State.Processes[:0]
	for _, p := range l.State.Processes {
		if p.Node != node || p.Name != name || p.Alive() {
			kept = append(kept, p)
		}
	}
	l.State.Processes = kept
	return len(pids), l.State.Save()
}
