#!/usr/bin/env bash
# Builds the C API (release, static and shared), compiles tests/decode_fixture.c with gcc against
# each, and runs both on the repository's fixtures; then compiles and runs the C example,
# examples/c/example.c (which README.md's "## Embedding: C" quotes: the two must be identical).
# If cbindgen is installed, also checks that include/sdq.h is what
# cbindgen generates from src/lib.rs (CI without cbindgen skips that).
#
#   sdq-capi/tests/run.sh            # from anywhere; honours CARGO_TARGET_DIR and CC
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
root="$(cd "$here/.." && pwd)"
target="${CARGO_TARGET_DIR:-$here/target}"
cc="${CC:-gcc}"

echo "== sdq-capi: cargo build --release"
cargo build --release --manifest-path "$here/Cargo.toml"
lib="$target/release"

if command -v cbindgen >/dev/null 2>&1; then
    echo "== sdq-capi: include/sdq.h is up to date (cbindgen $(cbindgen --version | awk '{print $2}'))"
    fresh="$(mktemp)"
    trap 'rm -f "$fresh"' EXIT
    (cd "$here" && cbindgen --quiet --config cbindgen.toml --crate sdq-capi --output "$fresh")
    if ! diff -u "$here/include/sdq.h" "$fresh"; then
        echo "include/sdq.h is stale: run  cd sdq-capi && cbindgen --config cbindgen.toml --crate sdq-capi --output include/sdq.h" >&2
        exit 1
    fi
else
    echo "== sdq-capi: cbindgen not installed, include/sdq.h not regenerated"
fi

out="$target/sdq-capi-test"
mkdir -p "$out"
flags=(-std=c11 -O2 -Wall -Wextra -Werror -pedantic -I "$here/include")

echo "== sdq-capi: static library ($(du -h "$lib/libsdq.a" | cut -f1))"
"$cc" "${flags[@]}" "$here/tests/decode_fixture.c" "$lib/libsdq.a" \
    -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o "$out/decode_fixture_static"
"$out/decode_fixture_static" "$root/fixtures"

echo "== sdq-capi: shared library ($(du -h "$lib/libsdq.so" | cut -f1))"
"$cc" "${flags[@]}" "$here/tests/decode_fixture.c" -L "$lib" -lsdq -lm \
    -Wl,-rpath,"$lib" -o "$out/decode_fixture_shared"
"$out/decode_fixture_shared" "$root/fixtures"

echo "== sdq-capi: the C example (examples/c/example.c, quoted in README.md)"
example="$root/examples/c/example.c"
awk '/^## Embedding: C/{s=1} s&&/^```c$/{f=1;next} f&&/^```$/{exit} f' "$root/README.md" \
    > "$out/readme_example.c"
if ! diff -u "$example" "$out/readme_example.c"; then
    echo "README.md's C example (the \`\`\`c block under '## Embedding: C') differs from examples/c/example.c" >&2
    exit 1
fi
"$cc" "${flags[@]}" "$example" "$lib/libsdq.a" \
    -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o "$out/example"
(cd "$root" && "$out/example" fixtures/mixed.sdq)
