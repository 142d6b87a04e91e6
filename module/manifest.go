package module

import (
	"slices"

	"github.com/valkey-iungo/valkey-iungo/config"
)

// UseManifest loads the manifest at path and applies it.
func (m *Module) UseManifest(path string) error {
	mf, err := config.LoadManifest(path)
	if err != nil {
		return err
	}
	m.manifest = mf
	_, err = m.ApplyManifest()
	return err
}

// ApplyManifest applies the manifest, if any, on top of the current
// configuration, and reports whether that changed anything.
func (m *Module) ApplyManifest() (bool, error) {
	mf := m.manifest
	if mf == nil {
		return false, nil
	}
	cur := m.Config()
	next := mf.Overlay(cur)
	if config.Digest(next) == config.Digest(cur) && slices.Equal(next.Crons, cur.Crons) {
		return false, nil
	}
	next.Revision = m.revision + 1
	p, err := m.Prepare(next, m.reuseCompiled)
	if err != nil {
		return false, err
	}
	m.Install(p, "manifest")
	return true, nil
}

// ManifestPath is the manifest's path, or "".
func (m *Module) ManifestPath() string {
	if m.manifest == nil {
		return ""
	}
	return m.manifest.Path
}
