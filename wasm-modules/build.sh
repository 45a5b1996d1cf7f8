#!/usr/bin/env bash
# Builds every sample module for WASI preview 1 (core modules) and preview 2
# (components) and copies them to out/<name>.wasm and out/<name>.component.wasm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

# Modules that only make sense as core modules (their imports cannot be
# expressed as a component).
p1_only=(missing-import)

targets=(wasm32-wasip1 wasm32-wasip2)
if command -v rustup >/dev/null 2>&1; then
    installed="$(rustup target list --installed)"
    for t in "${targets[@]}"; do
        if ! grep -qx "$t" <<<"$installed"; then
            rustup target add "$t"
        fi
    done
fi

members=$(sed -n '/^members = \[/,/^\]/p' Cargo.toml | grep -o '"[^"]*"' | tr -d '"')

cargo build --quiet --release --target wasm32-wasip1 --workspace
exclude=()
for m in "${p1_only[@]}"; do exclude+=(--exclude "$m"); done
cargo build --quiet --release --target wasm32-wasip2 --workspace "${exclude[@]}"

mkdir -p out
for m in $members; do
    cp "target/wasm32-wasip1/release/$m.wasm" "out/$m.wasm.tmp"
    mv "out/$m.wasm.tmp" "out/$m.wasm"
    if [[ " ${p1_only[*]} " != *" $m "* ]]; then
        cp "target/wasm32-wasip2/release/$m.wasm" "out/$m.component.wasm.tmp"
        mv "out/$m.component.wasm.tmp" "out/$m.component.wasm"
    fi
done
echo "built: $(echo $members | wc -w) modules into $here/out"
