module github.com/valkey-iungo/valkey-iungo

go 1.25.0

require (
	github.com/valkey-io/valkey-go v1.0.79
	github.com/yuin/gopher-lua v1.1.2
)

require golang.org/x/sys v0.47.0 // indirect

require (
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
