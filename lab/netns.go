package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces are bind-mounted (as iproute2 does).
const NetnsDir = "/run/netns"

// inThread runs fn on a dedicated OS thread. It is the only place where the
// lab switches namespaces: the goroutine locks its thread, fn may call
// netns.Set, and afterwards the thread is switched back to the original
// namespace. If switching back fails the thread stays locked and is
// discarded by the runtime when the goroutine ends, so no other goroutine
// ever runs in a foreign namespace.
func inThread(fn func(orig netns.NsHandle) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("getting current network namespace: %w", err)
			return // thread stays locked and is discarded
		}
		defer orig.Close()
		ferr := fn(orig)
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("switching back to the original network namespace: %w", err))
			return // thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// InNamespace runs fn with the calling OS thread inside the named network
// namespace (kernel name, e.g. "tl-s1-edge"). Sockets opened by fn stay in
// that namespace and may be used from any goroutine afterwards.
func InNamespace(ns string, fn func() error) error {
	return inThread(func(netns.NsHandle) error {
		h, err := netns.GetFromName(ns)
		if err != nil {
			return fmt.Errorf("opening network namespace %s: %w", ns, err)
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("entering network namespace %s: %w", ns, err)
		}
		return fn()
	})
}

// createNamespace makes a named network namespace. It fails if one by that
// name exists already.
func createNamespace(name string) error {
	if _, err := os.Stat(filepath.Join(NetnsDir, name)); err == nil {
		return fmt.Errorf("network namespace %s already exists: run `trellis-lab down` first", name)
	}
	return inThread(func(netns.NsHandle) error {
		h, err := netns.NewNamed(name)
		if err != nil {
			return fmt.Errorf("creating network namespace %s: %w", name, err)
		}
		return h.Close()
	})
}

// deleteNamespace unmounts and removes a named network namespace; the kernel
// destroys it (and every interface in it) once no process uses it.
func deleteNamespace(name string) error {
	p := filepath.Join(NetnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}

// ListNamespaces returns the named network namespaces whose names start with
// prefix + "-".
func ListNamespaces(prefix string) ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing %s: %w", NetnsDir, err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// setSysctl writes a sysctl of the namespace the calling thread is in
// (key in dotted form, e.g. "net.ipv4.ip_forward"). /proc/sys/net is
// resolved against the opening thread's network namespace.
func setSysctl(key, value string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("setting %s=%s: %w", key, value, err)
	}
	return nil
}

// nsInode returns the inode identifying the namespace mounted at path.
func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
