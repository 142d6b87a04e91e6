package iungo

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Ensure a signature verifies only for the same body and token.
func TestSignVerify(t *testing.T) {
	body := []byte(`{"version":1}`)
	sig := Sign("tok", body)
	require.NoError(t, Verify("tok", body, sig))
	require.Error(t, Verify("other", body, sig))
	require.Error(t, Verify("tok", []byte(`{"version":2}`), sig))
	require.ErrorContains(t, Verify("tok", body, ""), "no Iungo-Signature")
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
	c := &Client{Endpoint: hs.URL, Namespace: "shop", Token: "tok", Timeout: 30 * time.Second}
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

// Ensure names follow the protocol's rule.
func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{"shop-prod": true, "10.0.0.5:6379": true, "a.b_c": true,
		"": false, "a b": false, "ü": false, strings.Repeat("a", 129): false} {
		assert.Equal(t, ok, ValidName(name), name)
	}
}
