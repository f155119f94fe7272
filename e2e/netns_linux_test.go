//go:build linux

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment of the test process re-executed inside the namespace.
const (
	envInside   = "MESHMEET_E2E_INSIDE_NETNS" // "1" inside the namespace
	envServer   = "MESHMEET_E2E_SERVER"       // the meshmeet binary (built outside when unset)
	envChromium = "MESHMEET_CHROMIUM"         // the browser binary
)

// inNamespace runs the test named name inside a fresh network namespace
// with only lo, and returns true to the caller when the caller is that
// re-executed test and should do the work. Outside, it builds the server,
// re-executes the test binary under CLONE_NEWNET, reports the child's
// output and result, and returns false.
func inNamespace(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv(envInside) == "1" {
		if err := loopbackUp(); err != nil {
			t.Fatalf("set lo up in the test namespace: %v", err)
		}
		return true
	}

	chromium := findChromium()
	if chromium == "" {
		t.Skip("skipping browser test: no chromium, chromium-browser or google-chrome on PATH (apt-get install chromium), and MESHMEET_CHROMIUM is unset")
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping browser test: it needs root to make a network namespace with only loopback (unshare CLONE_NEWNET)")
	}

	// Modules cannot be fetched inside the namespace: build first, unless
	// MESHMEET_E2E_SERVER names a binary already built.
	server := os.Getenv(envServer)
	if server == "" {
		// go test keys its cache on the files a test opens: open the main
		// package's sources, which deps_test.go cannot link.
		mains, _ := filepath.Glob(filepath.Join("..", "cmd", "meshmeet", "*.go"))
		for _, f := range mains {
			if b, err := os.ReadFile(f); err != nil || len(b) == 0 {
				t.Logf("read %s: %v", f, err)
			}
		}
		server = filepath.Join(t.TempDir(), "meshmeet")
		goBin, err := exec.LookPath("go")
		if err != nil {
			t.Skipf("skipping browser test: no go command to build the server: %v", err)
		}
		build := exec.Command(goBin, "build", "-o", server, "github.com/meshmeet/meshmeet/cmd/meshmeet")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build meshmeet: %v\n%s", err, out)
		}
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	timeout := 4 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) - 10*time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^"+name+"$", "-test.v", "-test.count=1",
		fmt.Sprintf("-test.timeout=%s", timeout))
	cmd.Env = append(os.Environ(), envInside+"=1", envServer+"="+server, envChromium+"="+chromium)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	t.Logf("running %s inside a network namespace with only lo", name)
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			t.Skipf("skipping browser test: cannot make a network namespace here (a container without CAP_SYS_ADMIN?): %v", err)
		}
		t.Fatalf("start %s in a network namespace: %v", name, err)
	}
	err = cmd.Wait()
	text := out.String()
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		t.Log("│ " + line)
	}
	if err != nil {
		t.Fatalf("%s in the namespace: %v", name, err)
	}
	if strings.Contains(text, "--- SKIP: "+name) {
		t.Skip("skipped inside the namespace (see above)")
	}
	if !strings.Contains(text, "--- PASS: "+name) {
		t.Fatalf("%s in the namespace did not report PASS", name)
	}
	return false
}

// loopbackUp sets lo up: a new network namespace starts with lo down.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}

func findChromium() string {
	if p := os.Getenv(envChromium); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}
