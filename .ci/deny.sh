#!/usr/bin/env bash
# Dependency policy checks with cargo-deny (deny.toml) for each of the four lock files: the crate,
# sdq-capi/, sdq-python/ and fuzz/ (each its own workspace). Checks: licenses, bans, sources and
# advisories (RustSec). Any advisory that matches a locked version fails, unless deny.toml ignores
# it with a reason; so does a yanked version.
#
#   .ci/deny.sh                          # advisories from an offline snapshot (the default)
#   DENY_ADVISORIES=online .ci/deny.sh   # cargo-deny fetches the live database from GitHub
#
# Offline (the default; CI's machine cannot reach github.com), the RustSec database comes from,
# in this order:
#   1. $SDQ_ADVISORY_DB, a folder holding a copy of the database (its `crates/` inside);
#   2. ../shared/advisory-db beside the repository (or beside the main checkout, when this is a
#      git worktree), with its description ../shared/ADVISORY-DB.md;
#   3. the snapshot committed here, .ci/advisory-db-*.tar.xz (the newest by name).
# It is copied to a temporary folder made a git repository (cargo-deny wants one) whose commit
# carries the snapshot's date, so cargo-deny sees its true age; deny.toml's
# `maximum-db-staleness` says how old a snapshot may be before this check fails. `--offline`
# stops cargo-deny fetching anything; crates are fetched first with `cargo fetch --locked`
# (crates.io only). The log names the snapshot (source, commit, date, newest advisory in it).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TERM_COLOR=never

if ! cargo deny --version >/dev/null 2>&1; then
    cargo install cargo-deny --locked
fi
cargo deny --version

# DENY_MANIFESTS (space-separated paths) replaces the list, e.g. to try the check on another crate.
read -r -a manifests <<<"${DENY_MANIFESTS:-Cargo.toml sdq-capi/Cargo.toml sdq-python/Cargo.toml fuzz/Cargo.toml}"
mode="${DENY_ADVISORIES:-offline}"
[ "$mode" = 1 ] && mode=online # the old spelling
flags=()

tmp=""
cleanup() { [ -n "$tmp" ] && rm -rf "$tmp"; }
trap cleanup EXIT

case "$mode" in
online)
    export SDQ_DENY_DB_ROOT="${SDQ_DENY_DB_ROOT:-${CARGO_HOME:-$HOME/.cargo}/advisory-dbs}"
    echo "== advisory database: fetched from GitHub by cargo-deny (live) into $SDQ_DENY_DB_ROOT"
    ;;
offline)
    tmp="$(mktemp -d)"
    src="" desc=""
    common="$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
    if [ -n "${SDQ_ADVISORY_DB:-}" ]; then
        src="$SDQ_ADVISORY_DB"
        desc="$(dirname "$src")/ADVISORY-DB.md"
        echo "== advisory database: \$SDQ_ADVISORY_DB = $src"
    else
        for cand in "$root/../shared" "${common:+$(dirname "$common")/../shared}"; do
            if [ -n "$cand" ] && [ -d "$cand/advisory-db/crates" ]; then
                src="$(cd "$cand/advisory-db" && pwd)"
                desc="$cand/ADVISORY-DB.md"
                echo "== advisory database: $src"
                break
            fi
        done
    fi
    if [ -z "$src" ]; then
        tarball="$(ls .ci/advisory-db-*.tar.xz | sort | tail -n 1)"
        echo "== advisory database: $tarball (committed snapshot; sha256 $(sha256sum "$tarball" | cut -d' ' -f1))"
        mkdir "$tmp/unpacked"
        tar -xJf "$tarball" -C "$tmp/unpacked"
        src="$tmp/unpacked/advisory-db"
        desc="$tmp/unpacked/ADVISORY-DB.md"
    fi
    if [ ! -d "$src/crates" ]; then
        echo "!! $src holds no crates/ folder: not an advisory database" >&2
        exit 1
    fi
    commit="unknown" date=""
    if [ -f "$desc" ]; then
        commit="$(grep -oE '\b[0-9a-f]{40}\b' "$desc" | head -n 1 || true)"
        date="$(grep -oE '\([0-9]{4}-[0-9]{2}-[0-9]{2}\)' "$desc" | head -n 1 | tr -d '()' || true)"
    fi
    newest="$(grep -rhoE '^date = "[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$src/crates" | cut -d'"' -f2 | sort | tail -n 1)"
    count="$(find "$src/crates" -name 'RUSTSEC-*.md' ! -name 'RUSTSEC-0000-0000.md' | wc -l)"
    # Without a stated snapshot date, the newest advisory's date is the best lower bound.
    [ -z "$date" ] && date="$newest"
    echo "   commit ${commit}, snapshot date ${date:-unknown}, newest advisory ${newest}, ${count} advisories"
    echo "   advisories published after ${date} are NOT checked"

    for m in "${manifests[@]}"; do
        cargo fetch --locked --quiet --manifest-path "$m"
    done
    # cargo-deny keeps each database in <db-path>/<name>-<hash of its URL>; ask it where (its
    # debug log names the folder it opens) rather than recomputing its hash here.
    export SDQ_DENY_DB_ROOT="$tmp/dbs"
    mkdir -p "$SDQ_DENY_DB_ROOT"
    cargo deny -L debug --offline --config "$root/deny.toml" --manifest-path "${manifests[0]}" \
        check advisories >"$tmp/probe.log" 2>&1 || true
    dbdir="$(sed -nE "s/.*Opening advisory database at '([^']+)'.*/\1/p" "$tmp/probe.log" | head -n 1)"
    case "$dbdir" in
    "$SDQ_DENY_DB_ROOT"/*) ;;
    *)
        echo "!! could not learn where cargo-deny looks for its database (got '$dbdir'):" >&2
        tail -n 20 "$tmp/probe.log" >&2
        exit 1
        ;;
    esac
    cp -R "$src" "$dbdir"
    chmod -R u+w "$dbdir"
    (
        cd "$dbdir"
        export GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z"
        git init -q -b main .
        git add -A
        git -c user.name="sdq CI" -c user.email="ci@invalid" -c commit.gpgsign=false \
            commit -q -m "RustSec advisory-db snapshot ${commit} (${date})"
        # cargo-deny dates a database by max(HEAD's commit time, HEAD's mtime): make both the
        # snapshot's date.
        touch -d "${date}T00:00:00Z" .git/HEAD
    )
    flags+=(--offline)
    ;;
*)
    echo "!! DENY_ADVISORIES must be offline (default) or online, not '$mode'" >&2
    exit 1
    ;;
esac

status=0
for m in "${manifests[@]}"; do
    echo "== cargo deny check licenses bans sources advisories ($m)"
    if ! cargo deny "${flags[@]}" --config "$root/deny.toml" --manifest-path "$m" \
        check licenses bans sources advisories; then
        echo "!! cargo deny failed for $m"
        status=1
    fi
done
exit "$status"
