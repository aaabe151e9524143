#!/usr/bin/env bash
# The repository tests from a fresh clone: the committed HEAD of this
# checkout, fetched into a new temporary directory that has no shared/ (or
# anything else) beside it, and `cargo test --locked` run there. Proves the
# tests need nothing outside the repository.
#
# The clone builds into its own target directory (default
# target/fresh-clone of this checkout, kept between runs so only leanpoint
# itself is rebuilt), never into this checkout's target/debug, whose
# leanpoint binary the other steps test. LEANPOINT_FRESH_TARGET moves it.
#
#   scripts/fresh-clone.sh                      # cargo test --locked -- --test-threads=2
#   scripts/fresh-clone.sh --test migration     # one target only
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/leanpoint-fresh.XXXXXX")"
trap 'rm -rf "$work"' EXIT
clone="$work/leanpoint"

# Only committed files reach the clone; say so when the tree has more.
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
    echo "fresh-clone: uncommitted changes in $repo are not tested here" >&2
fi
git init --quiet "$clone"
git -C "$clone" fetch --quiet --depth 1 "file://$repo" HEAD
git -C "$clone" checkout --quiet --detach FETCH_HEAD
echo "fresh-clone: $(git -C "$clone" rev-parse --short HEAD) in $clone" >&2

# Nothing beside the clone: a test that reaches for a sibling shared/ finds nothing.
if [ "$(ls -A "$work")" != "leanpoint" ]; then
    echo "fresh-clone: $work holds more than the clone" >&2
    exit 1
fi
# No committed file outside the docs refers to the sibling shared/.
if git -C "$clone" grep -n '\.\./shared' -- ':!*.md'; then
    echo "fresh-clone: the files above refer to the sibling shared/" >&2
    exit 1
fi

export CARGO_TARGET_DIR="${LEANPOINT_FRESH_TARGET:-$repo/target/fresh-clone}"
cd "$clone"
# Arguments, if any, replace the default ones (e.g. `--test migration`).
if [ "$#" -eq 0 ]; then
    set -- -- --test-threads=2
fi
cargo test --locked "$@"
