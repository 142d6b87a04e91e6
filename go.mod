module github.com/valkey-iungo/valkey-iungo

go 1.26.8
