# Two images from one build, whose steps are `make binaries`:
#   docker build --target valkey-iungo -t valkey-iungo .   # valkey with the module
#   docker build --target iungo-server -t iungo-server .   # the reference iungo server
# Docker cannot run on the machines this project is developed on: this file
# is written to match the build, not tested (see README).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make binaries

# The official image is Debian bookworm too: the module links against the
# same glibc it was built with.
FROM valkey/valkey:8.0 AS valkey-iungo
COPY --from=build /src/build/iungo.so /usr/local/lib/valkey/iungo.so
COPY testdata/examples/valkey.conf /usr/local/etc/valkey/valkey.conf
# Options come after the path, e.g. endpoint http://iungo:7379 namespace shop token ...
CMD ["valkey-server", "/usr/local/etc/valkey/valkey.conf", "--bind", "0.0.0.0", "--loadmodule", "/usr/local/lib/valkey/iungo.so"]

# iungo-server is built without cgo (SQLite is pure Go): a static binary.
FROM gcr.io/distroless/static-debian12 AS iungo-server
COPY --from=build /src/build/iungo-server /iungo-server
VOLUME /data
EXPOSE 7379
ENTRYPOINT ["/iungo-server", "--listen", "0.0.0.0:7379", "--data", "/data"]
