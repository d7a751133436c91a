package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trellis-sdwan/trellis/manage/server"
)

// raiseNoFile lifts the soft limit of open files to the hard limit: every
// simulated device is a socket on both sides.
func raiseNoFile() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	r.Cur = r.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	return r.Cur, nil
}

// runManage is the child: a plain trellis-manage (flags as trellis-manage).
func runManage(args []string) int {
	if _, err := raiseNoFile(); err != nil {
		fmt.Fprintln(os.Stderr, "loadsim manage: raising the open files limit:", err)
	}
	cfg, err := server.ParseFlags("trellis-manage", args, os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadsim manage:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadsim manage:", err)
		return 1
	}
	// Only this child serves it: the simulator's memory probe, after a
	// full garbage collection.
	srv.Handle("GET /loadsim/mem", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(goMem{HeapAlloc: ms.HeapAlloc, HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse,
			Sys: ms.Sys, Goroutines: runtime.NumGoroutine()})
	}))
	fmt.Fprintf(os.Stdout, "loadsim-manage-ready %s\n", srv.Addr())
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "loadsim manage:", err)
		return 1
	}
	return 0
}

// goMem is the child's memory after a garbage collection.
type goMem struct {
	HeapAlloc  uint64 `json:"heap_alloc"`
	HeapInuse  uint64 `json:"heap_inuse"`
	StackInuse uint64 `json:"stack_inuse"`
	Sys        uint64 `json:"sys"`
	Goroutines int    `json:"goroutines"`
}

// child is a manage started by the simulator.
type child struct {
	cmd         *exec.Cmd
	dir         string
	url         string
	fingerprint string
	password    string
	done        chan error
}

var fpRE = regexp.MustCompile(`fingerprint: ([0-9a-f]{64})`)

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startManage runs this binary in manage mode on a new data directory.
func startManage(ctx context.Context, db string, log *slog.Logger, stderr io.Writer) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "trellis-loadsim-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	c := &child{dir: dir, url: "https://127.0.0.1:" + strconv.Itoa(port), password: "loadsim-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		done: make(chan error, 1)}
	args := []string{"--data-dir", filepath.Join(dir, "data"), "--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--public-url", c.url, "--admin-password", c.password, "--log-level", "warn", "--stun-listen", "off"}
	if db != "" {
		args = append(args, "--db", db)
	}
	c.cmd = exec.Command(self, args...)
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	c.cmd.Stderr = stderr
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting manage: %w", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if m := fpRE.FindStringSubmatch(line); m != nil {
				c.fingerprint = m[1]
			}
			if strings.HasPrefix(line, "loadsim-manage-ready") && !sent {
				ready <- nil
				sent = true
			}
		}
		if !sent {
			ready <- errors.New("manage exited before it was ready (see its log above)")
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			c.stop()
			return nil, err
		}
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		c.stop()
		return nil, errors.New("manage did not start within 2 minutes")
	}
	log.Info("manage started", "pid", c.cmd.Process.Pid, "url", c.url, "data", dir)
	return c, nil
}

// rss is the child's resident set size in bytes (/proc/PID/status VmRSS).
func (c *child) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) == 2 && f[1] == "kB" {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n * 1024, err
			}
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

func (c *child) stop() {
	if c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	_ = os.RemoveAll(c.dir)
}
