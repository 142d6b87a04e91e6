// Package vtest starts real valkey-server processes for tests: each on a free
// loopback port, in its own directory, with build/iungo.so loaded unless
// asked otherwise, and stopped when the test ends. A server that died during
// the test fails it with the tail of its log.
package vtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valkey-io/valkey-go"
)

// Options shape a server.
type Options struct {
	NoModule   bool     // plain valkey-server, for baselines
	ModuleArgs []string // after the .so path on the loadmodule line
	Config     []string // extra "name value" lines for the config file
	Dir        string   // data directory; a new temporary one if empty
}

// Server is a running valkey-server.
type Server struct {
	Addr    string
	Port    int
	Dir     string
	LogPath string
	Client  valkey.Client

	t    testing.TB
	opts Options
	cmd  *exec.Cmd
	done chan error
}

// Root returns the repository root (the directory holding go.mod).
func Root(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("vtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

// ModulePath is $IUNGO_MODULE or build/iungo.so under the root.
func ModulePath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("IUNGO_MODULE"); p != "" {
		return p
	}
	p := filepath.Join(Root(tb), "build", "iungo.so")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("vtest: %s is missing; run make build (or make test)", p)
	}
	return p
}

// Binary finds valkey-server, valkey-cli or valkey-benchmark: next to
// $VALKEY_SERVER when it is set (make test-versions points it at each
// built server), else on the PATH. One setting picks the version for every
// tool, so that a cluster is never created by another version's cli.
func Binary(name string) (string, error) {
	if server := os.Getenv("VALKEY_SERVER"); server != "" {
		p := filepath.Join(filepath.Dir(server), name)
		if name == "valkey-server" {
			p = server
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("VALKEY_SERVER is %s but %s is not there: %w", server, name, err)
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed; make test installs it (scripts/install-deps.sh)", name)
	}
	return p, nil
}

// Command is exec.Command for one of the Valkey tools (see Binary).
func Command(tb testing.TB, name string, args ...string) *exec.Cmd {
	tb.Helper()
	bin, err := Binary(name)
	if err != nil {
		tb.Fatalf("vtest: %v", err)
	}
	return exec.Command(bin, args...)
}

// Start starts a server and stops it when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: needs valkey-server (run without -short)")
	}
	bin, err := Binary("valkey-server")
	if err != nil {
		tb.Fatalf("vtest: %v", err)
	}
	s := &Server{t: tb, opts: opts, Dir: opts.Dir}
	if s.Dir == "" {
		s.Dir = tb.TempDir()
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = 0 // a new port each attempt, in case another process took it
		if lastErr = s.start(bin); lastErr == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("vtest: valkey-server did not start: %v\n%s", lastErr, s.LogTail(40))
	return nil
}

// start starts the process on s.Port, or on a free port when it is 0, so that
// a restarted server keeps its address.
func (s *Server) start(bin string) error {
	if s.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return err
		}
		s.Port = port
	}
	port := s.Port
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.LogPath = filepath.Join(s.Dir, "valkey.log")
	conf := []string{
		"port " + strconv.Itoa(port),
		"bind 127.0.0.1",
		"dir " + s.Dir,
		"logfile " + s.LogPath,
		`save ""`,
		"enable-module-command yes",
		"enable-debug-command yes",
		"crash-memcheck-enabled no",
		"repl-diskless-sync-delay 0", // replicas in tests sync at once
	}
	if !s.opts.NoModule {
		conf = append(conf, strings.Join(append([]string{"loadmodule", ModulePath(s.t)}, s.opts.ModuleArgs...), " "))
	}
	conf = append(conf, s.opts.Config...)
	confPath := filepath.Join(s.Dir, "valkey.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	_ = os.Remove(s.LogPath)
	s.cmd = exec.Command(bin, confPath)
	s.cmd.Dir = s.Dir
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("exited during start: %w", err)
		default:
		}
		// ForceSingleClient: a test talks to this node, even in a cluster.
		if c, err := valkey.NewClient(valkey.ClientOption{InitAddress: []string{s.Addr}, DisableCache: true, ForceSingleClient: true}); err == nil {
			if c.Do(context.Background(), c.B().Ping().Build()).Error() == nil {
				s.Client = c
				return nil
			}
			c.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = s.cmd.Process.Kill()
	return errors.New("no PONG within 15s")
}

// FreePort returns a loopback TCP port nobody listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Signal sends sig to the server process (SIGSTOP makes a replica that
// cannot answer, SIGKILL a crash).
func (s *Server) Signal(sig os.Signal) {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Alive reports whether the process is still running.
func (s *Server) Alive() bool {
	select {
	case err := <-s.done:
		s.done <- err
		return false
	default:
		return true
	}
}

// Stop shuts the server down; a server that already died fails the test.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	if s.Client != nil {
		s.Client.Close()
		s.Client = nil
	}
	if !s.Alive() {
		s.t.Errorf("vtest: valkey-server on %s died during the test:\n%s", s.Addr, s.LogTail(60))
		s.cmd = nil
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart stops the server and starts it again with the same directory and
// options (so RDB and AOF files are loaded).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.StartAgain()
}

// Shutdown sends SHUTDOWN with args (e.g. SAVE, NOSAVE) and waits for the
// process to end.
func (s *Server) Shutdown(args ...string) {
	s.t.Helper()
	_ = s.Do(append([]string{"SHUTDOWN"}, args...)...).Error() // the connection closes
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("vtest: SHUTDOWN %v did not end the server\n%s", args, s.LogTail(20))
	}
	s.Client.Close()
	s.Client, s.cmd = nil, nil
}

// WaitExit waits for a server that is expected to die and returns how the
// process ended.
func (s *Server) WaitExit(within time.Duration) error {
	s.t.Helper()
	select {
	case err := <-s.done:
		if s.Client != nil {
			s.Client.Close()
		}
		s.Client, s.cmd = nil, nil
		return err
	case <-time.After(within):
		s.t.Fatalf("vtest: the server did not exit within %v", within)
		return nil
	}
}

// StartAgain starts a stopped server in the same directory.
func (s *Server) StartAgain() {
	s.t.Helper()
	if err := s.TryStart(); err != nil {
		s.t.Fatalf("vtest: start failed: %v\n%s", err, s.LogTail(40))
	}
}

// TryStart starts a stopped server in the same directory and returns why it
// did not come up, with the process already gone in that case.
func (s *Server) TryStart() error {
	bin, err := Binary("valkey-server")
	if err != nil {
		return err
	}
	if err := s.start(bin); err != nil {
		s.cmd = nil
		return err
	}
	return nil
}

// LogTail returns the last n lines of the server log.
func (s *Server) LogTail(n int) string {
	f, err := os.Open(s.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Log returns the whole server log.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Do runs one command.
func (s *Server) Do(args ...string) valkey.ValkeyResult {
	return s.Client.Do(context.Background(), s.Client.B().Arbitrary(args...).Build())
}

// MustDo runs one command that must not fail and returns its reply.
func (s *Server) MustDo(args ...string) valkey.ValkeyMessage {
	s.t.Helper()
	r := s.Do(args...)
	if err := r.Error(); err != nil && !valkey.IsValkeyNil(err) {
		s.t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	m, _ := r.ToMessage()
	return m
}

// Eventually polls cond until it holds or the deadline passes.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
