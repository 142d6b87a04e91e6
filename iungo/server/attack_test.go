package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/valkey-iungo/valkey-iungo/iungo"
)

// The attacks of issue 10 on the reference server, each a test.

// fakeNode is a RESP peer that records the commands it gets, as a real node
// or an attacker's listener would, and answers IUNGO SYNC with version.
type fakeNode struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []string
}

func startFakeNode(t *testing.T, version string) *fakeNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	n := &fakeNode{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go n.serve(c, version)
		}
	}()
	return n
}

func (n *fakeNode) serve(c net.Conn, version string) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "*") {
			return
		}
		var args []string
		count := 0
		for _, ch := range strings.TrimSpace(line[1:]) {
			count = count*10 + int(ch-'0')
		}
		for range count {
			if _, err := r.ReadString('\n'); err != nil { // $len
				return
			}
			arg, err := r.ReadString('\n')
			if err != nil {
				return
			}
			args = append(args, strings.TrimSpace(arg))
		}
		cmd := strings.Join(args, " ")
		n.mu.Lock()
		n.seen = append(n.seen, cmd)
		n.mu.Unlock()
		switch strings.ToUpper(args[0]) {
		case "HELLO":
			_, _ = io.WriteString(c, "%1\r\n+server\r\n+valkey\r\n")
		case "IUNGO":
			_, _ = io.WriteString(c, ":"+version+"\r\n")
		default:
			_, _ = io.WriteString(c, "+OK\r\n")
		}
	}
}

func (n *fakeNode) commands() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.seen, "\n")
}

func (n *fakeNode) addr() string { return n.ln.Addr().String() }

// Ensure a node token cannot move another node's pushes: a node id stays
// at its address until the admin removes it, and the push credentials it
// could collect are its own namespace's.
func TestNodeIDBoundToAddress(t *testing.T) {
	s, hs := mustOpenServer(t)
	require.NoError(t, s.Store.SetPushCredentials("shop", "pusher", "S3cret-Push-PW"))
	_, err := s.Store.CreateNamespace("web", "webtok")
	require.NoError(t, err)
	require.NoError(t, s.Store.SetPushCredentials("web", "webpusher", "web-pw"))
	real, fake := startFakeNode(t, "1"), startFakeNode(t, "1")
	ctx := context.Background()
	node := &iungo.Client{Endpoint: hs.URL, Namespace: "shop", Token: "tok"}
	_, err = node.Register(ctx, iungo.Registration{NodeID: "n1", Address: real.addr(), Role: "primary"})
	require.NoError(t, err)

	// The attacker holds the shop token: re-registering n1 elsewhere fails.
	_, err = node.Register(ctx, iungo.Registration{NodeID: "n1", Address: fake.addr(), Role: "primary"})
	require.ErrorContains(t, err, "409 conflict")
	require.ErrorContains(t, err, "is registered at "+real.addr())

	results, err := s.Push(ctx, "shop")
	require.NoError(t, err)
	require.Len(t, results, 1)
	assert.Empty(t, results[0].Error)
	assert.Contains(t, real.commands(), "AUTH pusher S3cret-Push-PW")
	assert.NotContains(t, fake.commands(), "S3cret")

	// A new fake node of its own gets shop's push credential, never
	// web's; the admin sees and removes it.
	_, err = node.Register(ctx, iungo.Registration{NodeID: "evil", Address: fake.addr(), Role: "primary"})
	require.NoError(t, err)
	_, err = s.Push(ctx, "web")
	require.NoError(t, err)
	_, err = s.Push(ctx, "shop")
	require.NoError(t, err)
	assert.NotContains(t, fake.commands(), "web-pw")
	code, _ := call(t, "DELETE", hs.URL+"/admin/v1/namespaces/shop/nodes/evil", "adm", "")
	assert.Equal(t, 200, code)
	nodes, err := s.Store.Nodes("shop")
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	assert.Equal(t, "n1", nodes[0].ID)
}

// Ensure what a node token sends is bounded: nodes per namespace, field
// sizes, body sizes.
func TestNodeLimits(t *testing.T) {
	s, hs := mustOpenServer(t)
	s.Store.MaxNodes = 3
	ctx := context.Background()
	node := &iungo.Client{Endpoint: hs.URL, Namespace: "shop", Token: "tok"}
	for i, id := range []string{"a", "b", "c"} {
		_, err := node.Register(ctx, iungo.Registration{NodeID: id, Address: "127.0.0.1:" + string(rune('1'+i)), Role: "primary"})
		require.NoError(t, err)
	}
	_, err := node.Register(ctx, iungo.Registration{NodeID: "d", Address: "127.0.0.1:9", Role: "primary"})
	require.ErrorContains(t, err, "has 3 nodes, its limit")

	for _, bad := range []iungo.Registration{
		{NodeID: "x", Address: "nowhere", Role: "primary"},
		{NodeID: "x", Address: strings.Repeat("h", 300) + ":1", Role: "primary"},
		{NodeID: "x", Address: "h:1", Role: "king"},
		{NodeID: "x y", Address: "h:1", Role: "primary"},
		{NodeID: "x", Address: "h:1", Role: "primary", ValkeyVersion: strings.Repeat("9", 100)},
	} {
		_, err := node.Register(ctx, bad)
		require.ErrorContains(t, err, "400 bad_request", "%+v", bad)
	}
	_, err = node.Heartbeat(ctx, "a", iungo.Health{Role: "primary", LastError: strings.Repeat("e", 2000)})
	require.ErrorContains(t, err, "400 bad_request")
	_, err = node.Heartbeat(ctx, "a", iungo.Health{Role: "primary", LastError: strings.Repeat("e", 7<<20)})
	require.ErrorContains(t, err, "413 too_large")
	_, err = node.Heartbeat(ctx, "a", iungo.Health{Role: "primary", LastError: "disk full"})
	require.NoError(t, err)

	// Run reports are bounded too: they end up in the UI and the API.
	runErr := iungo.RunError{Pattern: "k:*", Events: "set", At: "2026-12-05T10:00:00.000Z", Event: "set", Key: "k:1", Message: "boom"}
	tooMany := make([]iungo.RunError, iungo.MaxRecentErrors+1)
	for i := range tooMany {
		tooMany[i] = runErr
	}
	longKey, longMessage := runErr, runErr
	longKey.Key = strings.Repeat("k", iungo.MaxErrorKeyBytes+1)
	longMessage.Message = strings.Repeat("m", iungo.MaxErrorMessageBytes+1)
	for _, bad := range []iungo.Health{
		{Role: "primary", RecentErrors: tooMany},
		{Role: "primary", RecentErrors: []iungo.RunError{longKey}},
		{Role: "primary", RecentErrors: []iungo.RunError{longMessage}},
		{Role: "primary", TriggerStats: []iungo.TriggerStats{{Pattern: strings.Repeat("p", 1025), Events: "set"}}},
		{Role: "primary", TriggersOmitted: -1},
	} {
		_, err = node.Heartbeat(ctx, "a", bad)
		require.ErrorContains(t, err, "400 bad_request")
	}
	_, err = node.Heartbeat(ctx, "a", iungo.Health{Role: "primary", RecentErrors: []iungo.RunError{runErr},
		TriggerStats: []iungo.TriggerStats{{Pattern: "k:*", Events: "set", Runs: 3, Errors: 1}}})
	require.NoError(t, err)
	nodes, err := s.Store.Nodes("shop")
	require.NoError(t, err)
	assert.Equal(t, []iungo.RunError{runErr}, nodes[0].RecentErrors)
}

// Ensure slow clients are cut off: the server had no read timeout beyond
// the headers, and connections trickling a byte every few seconds stayed
// open for ever.
func TestSlowClientsCutOff(t *testing.T) {
	store := mustOpenStore(t)
	srv := New(store, "adm")
	srv.ReadTimeout = 500 * time.Millisecond
	require.NoError(t, srv.Open("127.0.0.1:0"))
	t.Cleanup(func() { srv.Close() })
	addr := strings.TrimPrefix(srv.URL(), "http://")
	var wg sync.WaitGroup
	closed := make(chan time.Duration, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return
			}
			defer c.Close()
			start := time.Now()
			_, _ = io.WriteString(c, "POST /api/v2/namespaces/shop/nodes HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
			for time.Since(start) < 10*time.Second {
				if _, err := c.Write([]byte("x")); err != nil {
					closed <- time.Since(start)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(closed)
	n := 0
	for d := range closed {
		assert.Less(t, d, 5*time.Second)
		n++
	}
	assert.Equal(t, 10, n, "every trickling connection was cut off")
}

// Ensure the database that holds tokens and signing keys is its owner's
// only.
func TestStoreFilesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := OpenStore(dir)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.CreateNamespace("shop", "")
	require.NoError(t, err)
	for _, name := range []string{"", "iungo.db", "iungo.db-wal"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		mode := fi.Mode().Perm()
		assert.Zero(t, mode&0o077, "%s is %v", name, mode)
	}
}
