package testpeer

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Proc is a program started for a test.
type Proc struct {
	name string
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{}
	err  error // valid once done is closed
}

// stopGrace is how long Stop waits after SIGINT before SIGKILL.
const stopGrace = 5 * time.Second

// startProc starts path with args, its stdout and stderr captured. The
// process dies with the test binary (see setDeathSignal) even when the test
// times out and no cleanup runs.
func startProc(path string, args ...string) (*Proc, error) {
	cmd := exec.Command(path, args...)
	out := &tailBuffer{max: 1 << 20}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.Stdin = nil
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{name: path, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// startTool starts a tool found with lookTool, failing the test when it
// cannot start.
func startTool(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	RequireTools(t, name)
	path, _ := lookTool(name)
	p, err := startProc(path, args...)
	if err != nil {
		t.Fatalf("testpeer: start %s: %v", name, err)
	}
	return p
}

// Stop asks the program to finish (SIGINT: ffmpeg finalises its output,
// nginx shuts down), kills it after 5s, and waits for it to exit.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		p.Kill()
	}
}

// Kill kills the program (SIGKILL) and waits for it to exit.
func (p *Proc) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Output returns what the program printed so far (the last MiB).
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the program has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the program has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns how the program exited: nil for status 0, an *exec.ExitError
// otherwise. It is nil while the program runs.
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Pid returns the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// tailBuffer keeps the last max bytes written to it; safe for concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Clone(b.buf.String())
}
