#!/usr/bin/env bash
# Dependency policy checks with cargo-deny (deny.toml): licenses, bans, sources — for the crate
# and for the fuzz crate (its own workspace). These work offline.
#
# The advisory check (`cargo deny check advisories`) needs the RustSec database, which cargo-deny
# clones from GitHub at run time; it runs only with DENY_ADVISORIES=1 (on a machine that can
# reach github.com), since the project's build machine cannot (see SECURITY.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

if ! cargo deny --version >/dev/null 2>&1; then
    cargo install cargo-deny --locked
fi
cargo deny --version

checks=(licenses bans sources)
if [ "${DENY_ADVISORIES:-0}" = 1 ]; then
    checks+=(advisories)
fi
echo "== cargo deny check ${checks[*]} (crate)"
cargo deny check "${checks[@]}"
echo "== cargo deny check ${checks[*]} (fuzz crate)"
cargo deny --manifest-path fuzz/Cargo.toml check "${checks[@]}"
