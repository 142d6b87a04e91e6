package iungo

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client limits.
const (
	DefaultTimeout = 10 * time.Second
	MaxBodyBytes   = 64 << 20
)

// Client talks to one namespace of an iungo server over short-lived
// connections: one request per connection, none kept open.
type Client struct {
	Endpoint  string // e.g. https://iungo.example:7379
	Namespace string
	Token     string
	// PublicKey is the namespace's public key: configuration bodies not
	// signed with its private key are refused.
	PublicKey ed25519.PublicKey
	Timeout   time.Duration // DefaultTimeout if 0

	http *http.Client
}

// Error is a non-2xx answer.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("iungo answered %d %s: %s", e.Status, e.Code, e.Message)
}

// IsNotFound reports whether err is a 404 from the server.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func (c *Client) client() *http.Client {
	if c.http == nil {
		timeout := c.Timeout
		if timeout == 0 {
			timeout = DefaultTimeout
		}
		c.http = &http.Client{
			Timeout:   timeout,
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: timeout},
		}
	}
	return c.http
}

func (c *Client) url(parts ...string) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(c.Endpoint, "/"))
	b.WriteString(APIPrefix + "/namespaces/" + url.PathEscape(c.Namespace))
	for _, p := range parts {
		b.WriteString("/")
		b.WriteString(p)
	}
	return b.String()
}

// do sends one request and returns the body of a 2xx answer; signed
// answers are verified.
func (c *Client) do(ctx context.Context, method, u string, in any, signed bool) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Close = true
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("iungo unreachable: %w", err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxBodyBytes {
		return nil, fmt.Errorf("iungo's answer is over %d MiB (%d bytes)", MaxBodyBytes>>20, resp.ContentLength)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading iungo's answer: %w", err)
	}
	if len(data) > MaxBodyBytes {
		return nil, fmt.Errorf("iungo's answer is over %d MiB", MaxBodyBytes>>20)
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			return nil, &Error{Status: resp.StatusCode, Code: "unreadable", Message: truncate(string(data))}
		}
		return nil, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if signed {
		if len(c.PublicKey) != ed25519.PublicKeySize {
			return nil, errors.New("iungo.public-key is not set: a node only applies configurations signed with its namespace's key")
		}
		if err := Verify(c.PublicKey, data, resp.Header.Get(SignatureHeader)); err != nil {
			return nil, err
		}
	}
	return data, nil
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func decode(data []byte, out any) error {
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("iungo's answer is not the JSON expected: %w", err)
	}
	return nil
}

// Register registers a node and returns the namespace's version.
func (c *Client) Register(ctx context.Context, r Registration) (VersionReply, error) {
	var out VersionReply
	data, err := c.do(ctx, http.MethodPost, c.url("nodes"), r, false)
	if err == nil {
		err = decode(data, &out)
	}
	return out, err
}

// Heartbeat reports a node's health and returns the namespace's version.
func (c *Client) Heartbeat(ctx context.Context, nodeID string, h Health) (VersionReply, error) {
	var out VersionReply
	data, err := c.do(ctx, http.MethodPost, c.url("nodes", url.PathEscape(nodeID), "heartbeat"), h, false)
	if err == nil {
		err = decode(data, &out)
	}
	return out, err
}

// Snapshot fetches the whole configuration.
func (c *Client) Snapshot(ctx context.Context) (*Snapshot, error) {
	data, err := c.do(ctx, http.MethodGet, c.url("snapshot"), nil, true)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := decode(data, &s); err != nil {
		return nil, err
	}
	return &s, c.checkNamespace(s.Namespace)
}

// Changes fetches what changed since a version: a delta, or a snapshot
// when the server cannot give one.
func (c *Client) Changes(ctx context.Context, since uint64) (Update, error) {
	data, err := c.do(ctx, http.MethodGet, c.url("changes")+"?since="+strconv.FormatUint(since, 10), nil, true)
	if err != nil {
		return Update{}, err
	}
	var head struct {
		Kind      string `json:"kind"`
		Namespace string `json:"namespace"`
	}
	if err := decode(data, &head); err != nil {
		return Update{}, err
	}
	if err := c.checkNamespace(head.Namespace); err != nil {
		return Update{}, err
	}
	switch head.Kind {
	case KindSnapshot:
		var s Snapshot
		err = decode(data, &s)
		return Update{Snapshot: &s}, err
	case KindDelta:
		var d Changes
		err = decode(data, &d)
		if err == nil && d.From != since {
			err = fmt.Errorf("iungo sent a delta from version %d, not from %d", d.From, since)
		}
		return Update{Delta: &d}, err
	}
	return Update{}, fmt.Errorf("iungo's answer has kind %q; want %q or %q", head.Kind, KindDelta, KindSnapshot)
}

func (c *Client) checkNamespace(ns string) error {
	if ns != c.Namespace {
		return fmt.Errorf("iungo answered for namespace %q, not %q", ns, c.Namespace)
	}
	return nil
}
