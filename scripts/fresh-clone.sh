#!/usr/bin/env bash
# The repository tests from a fresh clone: the committed HEAD of this
# checkout, fetched into a new temporary directory that has no shared/ (or
# anything else) beside it, and `cargo test --locked` run there. Proves the
# tests need nothing outside the repository.
#
# The clone builds into its own target directory in the same temporary
# directory (removed at the end: the test binaries take gigabytes), never into this
# checkout's target/debug, whose leanpoint binary the other steps test. It
# starts from copies of this checkout's compiled dependencies, so only
# leanpoint itself is compiled. LEANPOINT_FRESH_TARGET moves it elsewhere.
#
#   scripts/fresh-clone.sh                      # cargo test --locked -- --test-threads=2
#   scripts/fresh-clone.sh --test it service::migration   # one suite only
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/leanpoint-fresh.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The clone's parent holds the clone alone; the build goes elsewhere in $work.
mkdir "$work/src"
clone="$work/src/leanpoint"

# Only committed files reach the clone; say so when the tree has more.
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    echo "fresh-clone: uncommitted changes in $repo are not tested here" >&2
fi
git init --quiet "$clone"
git -C "$clone" fetch --quiet --depth 1 "file://$repo" HEAD
git -C "$clone" checkout --quiet --detach FETCH_HEAD
echo "fresh-clone: $(git -C "$clone" rev-parse --short HEAD) in $clone" >&2

# Nothing beside the clone: a test that reaches for a sibling shared/ finds nothing.
if [ "$(ls -A "$work/src")" != "leanpoint" ]; then
    echo "fresh-clone: $work/src holds more than the clone" >&2
    exit 1
fi
# No committed file outside the docs refers to the sibling shared/.
if git -C "$clone" grep -n '\.\./shared' -- ':!*.md'; then
    echo "fresh-clone: the files above refer to the sibling shared/" >&2
    exit 1
fi

seed="${CARGO_TARGET_DIR:-$repo/target}/debug"
export CARGO_TARGET_DIR="${LEANPOINT_FRESH_TARGET:-$work/target}"
# A new target directory starts from this checkout's compiled dependencies
# (copies, not links: nothing built for the clone can touch them), so only
# leanpoint itself is compiled again. Its own artifacts are left behind:
# built from the clone's path, they are rebuilt from the clone's sources.
if [ ! -d "$CARGO_TARGET_DIR/debug/deps" ] && [ -d "$seed/deps" ]; then
    mkdir -p "$CARGO_TARGET_DIR/debug"
    (cd "$seed" && find deps -maxdepth 1 -name 'lib*' ! -name 'libleanpoint*' -print0;
        find .fingerprint build -mindepth 1 -maxdepth 1 ! -name 'leanpoint-*' -print0) |
        tar -C "$seed" --null -T - -cf - | tar -C "$CARGO_TARGET_DIR/debug" -xf -
    echo "fresh-clone: dependencies seeded from $seed" >&2
fi
cd "$clone"
# Arguments, if any, replace the default ones (e.g. `--test it service::migration`).
if [ "$#" -eq 0 ]; then
    set -- -- --test-threads=2
fi
cargo test --locked "$@"
