package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startInNamespace starts argv in the named network namespace ("" = the
// caller's own), detached into
// its own session, with stdout and stderr appended to logPath. The child
// inherits the namespace of the OS thread that forks it, which is why the
// start happens inside InNamespace. The returned record identifies the
// process for Down. The child is reaped in the background if it exits while
// this process still lives.
func startInNamespace(ns, name, node string, argv, env []string, dir, logPath string) (ProcRecord, error) {
	rec := ProcRecord{Name: name, Node: node, NS: ns, Argv: argv, Log: logPath}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return rec, fmt.Errorf("opening log for %s: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := cmd.Start
	if ns != "" {
		start = func() error { return InNamespace(ns, cmd.Start) }
	}
	if err := start(); err != nil {
		return rec, fmt.Errorf("starting %s (%s) in %s: %w", name, strings.Join(argv, " "), ns, err)
	}
	go func() { _ = cmd.Wait() }()
	rec.PID = cmd.Process.Pid
	rec.Start, _ = procStart(rec.PID)
	return rec, nil
}

// procStart returns the start time of a process (field 22 of /proc/PID/stat).
func procStart(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	// The command name (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// procAlive reports whether pid is a live (non-zombie) process.
func procAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	st := s[i+2]
	return st != 'Z' && st != 'X'
}

// Alive reports whether the recorded process is still the one we started.
func (r ProcRecord) Alive() bool {
	if r.PID <= 0 || !procAlive(r.PID) {
		return false
	}
	st, err := procStart(r.PID)
	return err == nil && (r.Start == 0 || st == r.Start)
}

// pidsInNamespace lists processes whose network namespace is the one mounted
// at /run/netns/<ns>.
func pidsInNamespace(ns string) ([]int, error) {
	ino, err := nsInode(filepath.Join(NetnsDir, ns))
	if err != nil {
		return nil, err
	}
	want := fmt.Sprintf("net:[%d]", ino)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		link, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err == nil && link == want {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// terminate sends SIGTERM to every pid, waits up to grace for them to exit
// and then sends SIGKILL, waiting up to another grace. It returns the pids
// still alive at the end.
func terminate(ctx context.Context, pids []int, grace time.Duration) []int {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGTERM)
	}
	alive := waitGone(ctx, pids, grace)
	for _, p := range alive {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return waitGone(ctx, alive, grace)
}

func waitGone(ctx context.Context, pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var alive []int
		for _, p := range pids {
			if procAlive(p) {
				alive = append(alive, p)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return alive
		}
		pids = alive
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}
