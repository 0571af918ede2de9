// Package scripts holds the tests of the shell scripts beside them.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sourced runs a bash snippet after sourcing setup.sh (which then runs
// nothing itself), with a short poll interval.
func sourced(t *testing.T, env []string, snippet string, args ...string) (string, time.Duration, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"-c", "source ./setup.sh\n" + snippet, "bash"}, args...)...)
	cmd.Env = append(append(os.Environ(), "APT_LOCK_POLL=0.1"), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	return string(out), time.Since(start), err
}

// hold locks f like flock(1) (flock) or like apt and dpkg (fcntl) and
// returns the release function.
func hold(t *testing.T, f, kind string) func() {
	t.Helper()
	fd, err := syscall.Open(f, syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if kind == "flock" {
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	} else {
		err = syscall.FcntlFlock(uintptr(fd), syscall.F_SETLK, &syscall.Flock_t{Type: syscall.F_WRLCK})
	}
	if err != nil {
		syscall.Close(fd)
		t.Fatalf("lock %s: %v", f, err)
	}
	var once bool
	release := func() {
		if !once {
			once = true
			syscall.Close(fd) // drops both kinds of lock
		}
	}
	t.Cleanup(release)
	return release
}

// wait_for_locks waits while a lock is held, says so, and returns once it
// is released; for flock(1)'s locks, apt's fcntl ones and, when this test
// may take it, the real /var/lib/apt/lists/lock.
func TestWaitForLocks(t *testing.T) {
	files := map[string]string{
		"flock": filepath.Join(t.TempDir(), "lock"),
		"fcntl": filepath.Join(t.TempDir(), "lock"),
	}
	const real = "/var/lib/apt/lists/lock"
	if fd, err := syscall.Open(real, syscall.O_RDWR, 0); err == nil {
		syscall.Close(fd)
		files["flock-apt-lists"] = real // flock does not block apt's fcntl lock
	}
	for name, f := range files {
		t.Run(name, func(t *testing.T) {
			kind := strings.TrimSuffix(name, "-apt-lists")
			release := hold(t, f, kind)
			const held = 1500 * time.Millisecond
			time.AfterFunc(held, release)
			free := filepath.Join(t.TempDir(), "no-lock-here")
			out, took, err := sourced(t, nil, `wait_for_locks 30 "$@" && echo free`, free, f)
			if err != nil || !strings.HasSuffix(out, "free\n") {
				t.Fatalf("%v\n%s", err, out)
			}
			if took < held || took > held+10*time.Second {
				t.Errorf("returned after %v; the lock was held %v", took, held)
			}
			want := "setup: waiting for " + f + ", locked by process " + strconv.Itoa(os.Getpid()) + " ("
			if !strings.Contains(out, want) || strings.Count(out, "waiting") != 1 {
				t.Errorf("want one line with %q:\n%s", want, out)
			}
		})
	}
}

// Past the timeout, wait_for_locks fails naming the file and its holder.
func TestWaitForLocksTimeout(t *testing.T) {
	f := filepath.Join(t.TempDir(), "lock")
	hold(t, f, "fcntl")
	out, took, err := sourced(t, nil, `wait_for_locks 1 "$1"`, f)
	if err == nil || !strings.Contains(out, "setup: "+f+" is still locked by process "+strconv.Itoa(os.Getpid())) || !strings.Contains(out, "after 1 s") {
		t.Errorf("%v\n%s", err, out)
	}
	if took > 10*time.Second {
		t.Errorf("took %v", took)
	}
	// Free and missing lock files do not wait.
	out, took, err = sourced(t, nil, `wait_for_locks 5 "$@"`, filepath.Join(t.TempDir(), "missing"), filepath.Join(t.TempDir()))
	if err != nil || out != "" || took > 3*time.Second {
		t.Errorf("free: %v %v\n%s", err, took, out)
	}
}

// apt_get waits for the locks, passes dpkg's lock timeout, and retries when
// apt-get reports a lock taken in between (a fake apt-get here).
func TestAptGetRetriesOnLock(t *testing.T) {
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls")
	fake := `#!/bin/sh
echo "$*" >> ` + calls + `
if [ "$(wc -l < ` + calls + `)" -eq 1 ]; then
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)" >&2
  exit 100
fi
echo "DEBIAN_FRONTEND=$DEBIAN_FRONTEND"
`
	if err := os.WriteFile(filepath.Join(dir, "apt-get"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, "lock")
	release := hold(t, lock, "fcntl")
	// The lock is released once the script says it waits for it (a fixed
	// delay raced the script's start on a loaded machine), or after 30 s.
	said := filepath.Join(dir, "said")
	go func() {
		for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if b, _ := os.ReadFile(said); strings.Contains(string(b), "setup: waiting for") {
				break
			}
		}
		release()
	}()
	out, _, err := sourced(t, []string{"PATH=" + dir + ":" + os.Getenv("PATH"), "APT_LOCK_TIMEOUT=60", "SUDO="},
		`APT_LOCKS=("$1"); apt_get update -q 2> >(tee "$2" >&2)`, lock, said)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, _ := os.ReadFile(calls)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "-o DPkg::Lock::Timeout=") || !strings.HasSuffix(lines[1], " update -q") {
		t.Errorf("apt-get calls %q", lines)
	}
	for _, w := range []string{"setup: waiting for " + lock, "Could not get lock", "found a lock taken; waiting again", "DEBIAN_FRONTEND=noninteractive"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// A failure that is not about a lock is not retried.
	os.WriteFile(filepath.Join(dir, "apt-get"), []byte("#!/bin/sh\necho x >> "+calls+"\necho 'E: Unable to locate package nope' >&2\nexit 100\n"), 0o755)
	os.Remove(calls)
	out, _, err = sourced(t, []string{"PATH=" + dir + ":" + os.Getenv("PATH"), "SUDO="}, `APT_LOCKS=(); apt_get install nope`)
	if b, _ := os.ReadFile(calls); err == nil || string(b) != "x\n" || !strings.Contains(out, "Unable to locate package nope") {
		t.Errorf("non-lock failure: %v, calls %q\n%s", err, b, out)
	}
}

// With everything installed, setup.sh does not touch apt at all, so a held
// apt lock does not delay it; sourcing it runs nothing.
func TestSetupIdempotentUnderLock(t *testing.T) {
	dir := t.TempDir()
	called := filepath.Join(dir, "called")
	for _, name := range []string{"apt-get", "sudo"} {
		os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho "+name+" >> "+called+"\nexit 1\n"), 0o755)
	}
	if fd, err := syscall.Open("/var/lib/apt/lists/lock", syscall.O_RDWR, 0); err == nil {
		syscall.Close(fd)
		hold(t, "/var/lib/apt/lists/lock", "flock")
	}
	cmd := exec.Command("./setup.sh")
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH")+":/usr/local/go/bin", "APT_LOCK_TIMEOUT=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if strings.Contains(string(out), "setup: installing") {
		t.Skipf("packages are missing here, so setup.sh would install them:\n%s", out)
	}
	if err != nil || len(out) != 0 {
		t.Errorf("setup.sh: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(called); err == nil {
		t.Errorf("setup.sh called %s", b)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("setup.sh took %v", d)
	}
	out2, _, err := sourced(t, nil, `echo sourced`)
	if err != nil || out2 != "sourced\n" {
		t.Errorf("sourcing ran something: %v\n%s", err, out2)
	}
}
