package iungo

import (
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Ensure a signature verifies only for the same body and the namespace's
// key: the bearer token, which every node holds, signs nothing.
func TestSignVerify(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	other, _, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	body := []byte(`{"version":1}`)
	sig := Sign(priv, body)
	require.NoError(t, Verify(pub, body, sig))
	require.Error(t, Verify(other, body, sig))
	require.Error(t, Verify(pub, []byte(`{"version":2}`), sig))
	require.ErrorContains(t, Verify(pub, body, ""), "no Iungo-Signature")
	require.Error(t, Verify(pub, body, "sha256=00"))

	parsed, err := ParsePublicKey(PublicKeyString(pub))
	require.NoError(t, err)
	assert.Equal(t, pub, parsed)
	_, err = ParsePublicKey("tok")
	require.ErrorContains(t, err, "44 characters of base64")
}

// Ensure the client sends one request per connection with the bearer
// token, and refuses an answer over the limit even without a length.
func TestClientLimits(t *testing.T) {
	var sawClose, sawToken bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawClose, sawToken = r.Close, r.Header.Get("Authorization") == "Bearer tok"
		chunk := strings.Repeat("x", 1<<20)
		for range MaxBodyBytes>>20 + 1 {
			_, _ = io.WriteString(w, chunk)
			w.(http.Flusher).Flush() // chunked: no Content-Length
		}
	}))
	defer hs.Close()
	pub, _, _ := ed25519.GenerateKey(nil)
	c := &Client{Endpoint: hs.URL, Namespace: "shop", Token: "tok", PublicKey: pub, Timeout: 30 * time.Second}
	_, err := c.Snapshot(context.Background())
	require.ErrorContains(t, err, "over 64 MiB")
	assert.True(t, sawClose, "Connection: close")
	assert.True(t, sawToken)
}

// Ensure a non-JSON error page is reported with its status.
func TestClientErrorPage(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>upstream down</html>")
	}))
	defer hs.Close()
	c := &Client{Endpoint: hs.URL, Namespace: "shop", Token: "tok"}
	_, err := c.Register(context.Background(), Registration{NodeID: "n"})
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 502, e.Status)
	assert.Contains(t, e.Message, "upstream down")
}
