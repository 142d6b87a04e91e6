// Package iungo is version 1 of the iungo protocol (docs/iungo-protocol.md):
// its wire types, its signatures, and the short-lived HTTP client the module
// uses. The reference server in iungo/server speaks it too.
package iungo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// APIPrefix starts every path of version 1.
const APIPrefix = "/api/v1"

// SignatureHeader carries the HMAC-SHA256 of a configuration body.
const SignatureHeader = "Iungo-Signature"

// Kinds of a changes response.
const (
	KindDelta    = "delta"
	KindSnapshot = "snapshot"
)

// Script is a Lua source by name.
type Script struct {
	Name   string `json:"name"`
	Source string `json:"source"`
}

// Trigger runs Script for Events on keys matching Pattern.
type Trigger struct {
	Pattern string `json:"pattern"`
	Events  string `json:"events"`
	Script  string `json:"script"`
	Enabled bool   `json:"enabled"`
}

// TriggerKey identifies a trigger.
type TriggerKey struct {
	Pattern string `json:"pattern"`
	Events  string `json:"events"`
}

// Snapshot is a namespace's whole configuration.
type Snapshot struct {
	Namespace string    `json:"namespace"`
	Kind      string    `json:"kind,omitempty"`
	Version   uint64    `json:"version"`
	Events    []string  `json:"events"`
	Scripts   []Script  `json:"scripts"`
	Triggers  []Trigger `json:"triggers"`
}

// Changes is a delta: what turns version From into Version.
type Changes struct {
	Namespace string   `json:"namespace"`
	Kind      string   `json:"kind"`
	From      uint64   `json:"from"`
	Version   uint64   `json:"version"`
	Events    []string `json:"events,omitempty"`
	Scripts   struct {
		Set   []Script `json:"set,omitempty"`
		Unset []string `json:"unset,omitempty"`
	} `json:"scripts"`
	Triggers struct {
		Set   []Trigger    `json:"set,omitempty"`
		Unset []TriggerKey `json:"unset,omitempty"`
	} `json:"triggers"`
}

// Update is the answer to "changes since": exactly one of Delta and
// Snapshot is set.
type Update struct {
	Delta    *Changes
	Snapshot *Snapshot
}

// Registration is what a node says when it registers.
type Registration struct {
	NodeID        string `json:"node_id"`
	Address       string `json:"address"`
	ValkeyVersion string `json:"valkey_version"`
	ModuleVersion string `json:"module_version"`
	Role          string `json:"role"`
}

// Health is what a node reports in a heartbeat.
type Health struct {
	SyncVersion uint64 `json:"sync_version"`
	LastSyncAt  string `json:"last_sync_at"`
	LastError   string `json:"last_error"`
	Runs        uint64 `json:"runs"`
	Errors      uint64 `json:"errors"`
	Triggers    int    `json:"triggers"`
	Role        string `json:"role"`
}

// VersionReply answers registrations and heartbeats.
type VersionReply struct {
	NodeID  string `json:"node_id,omitempty"`
	Version uint64 `json:"version"`
}

// ErrorBody is the body of every non-2xx response.
type ErrorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Error codes.
const (
	CodeBadRequest   = "bad_request"
	CodeUnauthorized = "unauthorized"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "too_large"
	CodeInternal     = "internal"
)

// Sign returns the Iungo-Signature value of body under token.
func Sign(token string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a signature header value against body and token.
func Verify(token string, body []byte, signature string) error {
	if signature == "" {
		return fmt.Errorf("the response has no %s header", SignatureHeader)
	}
	want := Sign(token, body)
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(signature))) {
		return fmt.Errorf("the %s does not match the body: corrupted or tampered with", SignatureHeader)
	}
	return nil
}

// ValidName reports whether s is a valid namespace, node or script name.
func ValidName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}
