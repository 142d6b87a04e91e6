module github.com/valkey-iungo/valkey-iungo

go 1.26.8

require github.com/yuin/gopher-lua v1.1.2

require (
	github.com/stretchr/testify v1.12.1
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
