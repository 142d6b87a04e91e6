package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleConfig() Config {
	return Config{
		Revision: 7,
		Origin:   Origin{NamespaceID: "ns-1", Version: 3, Digest: "sha256:00"},
		Classes:  ClassHash | ClassString | ClassNew,
		Paused:   true,
		Scripts:  []ScriptDef{{"a", "return 1"}, {"b", "server.call('INCR', 'n')"}},
		Triggers: []TriggerDef{
			{Pattern: "order:*", Events: "hset,set", Script: "a", Enabled: true},
			{Pattern: "bin:\x00\xff", Events: "*", Script: "b", Enabled: false},
		},
		Crons: []CronDef{
			{Name: "daily", Schedule: "0 0 * * *", Script: "a", Enabled: true, Since: 1796515200000, LastRun: 1796515200000},
			{Name: "tick", Schedule: "@every 10s", Script: "b"},
		},
	}
}

// Ensure the digest covers crons but not when they last ran (each node's
// state), and a configuration without crons keeps the digest it had.
func TestDigestCrons(t *testing.T) {
	c := sampleConfig()
	withCrons := Digest(c)
	c.Crons[0].Since, c.Crons[0].LastRun = 1, 1
	assert.Equal(t, withCrons, Digest(c), "state is not configuration")
	c.Crons[1].Schedule = "@every 11s"
	assert.NotEqual(t, withCrons, Digest(c))
	c.Crons = nil
	assert.NotEqual(t, withCrons, Digest(c))
	// The digest of this configuration before crons existed.
	assert.Equal(t, digestWithoutCrons, Digest(c))
}

// Ensure a snapshot decodes to what was encoded.
func TestSnapshotRoundTrip(t *testing.T) {
	c := sampleConfig()
	got, err := Decode(Encode(c))
	require.NoError(t, err)
	assert.Equal(t, c, got)
}

// Ensure damaged snapshots are refused with a reason, never half read.
func TestSnapshotDamage(t *testing.T) {
	good := Encode(sampleConfig())
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x40
	cases := map[string][]byte{
		"bad magic":          append([]byte("XUNGOCF1"), good[8:]...),
		"checksum mismatch":  flipped,
		"checksum mismatch ": good[:len(good)-7], // truncated: the tail no longer sums up
		"bad magic ":         good[:5],
		"no header record":   FrameSnapshot(ScriptRecord("a", "x")),
		"two header":         FrameSnapshot(HeaderRecord(&Config{Revision: 1}), HeaderRecord(&Config{Revision: 1})),
		"unknown record":     FrameSnapshot(HeaderRecord(&Config{Revision: 1}), []byte{'Z'}),
		"truncated string":   FrameSnapshot(HeaderRecord(&Config{Revision: 1}), []byte{'S', 9, 'a'}),
		"bad flag":           FrameSnapshot([]byte{'H', 1, 0, 7, 0}),
		"two origin":         FrameSnapshot(HeaderRecord(&Config{Origin: Origin{NamespaceID: "x"}}), []byte{'O', 0, 0}),
	}
	for want, b := range cases {
		_, err := Decode(b)
		require.Error(t, err, want)
		assert.Contains(t, err.Error(), strings.TrimSpace(want))
	}
}

// FuzzDecodeConfig feeds arbitrary bytes: never a panic, and whatever
// decodes encodes back to the same configuration.
func FuzzDecodeConfig(f *testing.F) {
	f.Add(Encode(sampleConfig()))
	f.Add(Encode(Config{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			return
		}
		again, err := Decode(Encode(c))
		require.NoError(t, err)
		require.Equal(t, Encode(c), Encode(again))
		require.Equal(t, len(c.Scripts), len(again.Scripts))
	})
}

// digestWithoutCrons is Digest(sampleConfig() without crons) as it was
// computed before crons and windows existed: nodes and iungo databases
// hold such digests.
const digestWithoutCrons = "sha256:4b4c8f88117fb33e2468af36a4c7f49654e7bfc68d3408c372df26284744a559"
