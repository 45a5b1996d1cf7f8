#!/bin/sh
# Three wasmk masters against three etcd members on loopback (issue 5):
# installs Debian's etcd-server if etcd is missing, builds the binaries,
# and runs benchmarks/src/bin/raft_bench.rs. Extra arguments go to it, e.g.
#   benchmarks/raft_bench.sh --seconds 20 --failovers 10
set -eu
cd "$(dirname "$0")/.."
if ! command -v etcd >/dev/null 2>&1; then
    echo "etcd is missing: installing Debian's etcd-server" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y etcd-server
    # The package may start a system etcd on the default ports; the
    # benchmark uses its own ports and data directories either way.
fi
# The measured masters are the release binary; the load generator is built
# without fat LTO (profile bench-client), which only shortens the build.
cargo build --release --bin wasmk
cargo build --profile bench-client -p wasmk-benchmarks --bin raft_bench
exec target/bench-client/raft_bench --wasmk target/release/wasmk --etcd "$(command -v etcd)" "$@"
