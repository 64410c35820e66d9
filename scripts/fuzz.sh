#!/usr/bin/env bash
# A long fuzz run of the property tests that CI runs briefly: the CQL2 front
# end (text and JSON), the four readers (GeoJSON, FlatGeobuf, Shapefile+DBF,
# GeoPackage) with damaged files, and the router's URL parameters (tiles,
# items, search, point queries).
#   scripts/fuzz.sh [cases per property, default 20000]
# A failing input is kept by proptest in a `proptest-regressions/` file next
# to the test; commit that file and every later run (and CI) tries it first.
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
# proptest reads the number of cases from PROPTEST_CASES (256 when unset, as in CI).
export PROPTEST_CASES="$cases"
echo "fuzzing with $cases cases per property (release build)"
failed=0
cargo test --release -p chizu-core --lib cql2::tests::fuzz || failed=1
cargo test --release -p chizu-io --test fuzz_readers || failed=1
cargo test --release -p chizu-server --test fuzz_routes || failed=1
if [ -n "$(git status --porcelain -- '*proptest-regressions*')" ]; then
  echo "failing inputs were kept as regression cases; fix the bug, then commit them:"
  git status --porcelain -- '*proptest-regressions*'
fi
[ "$failed" -eq 0 ] && echo "no failures"
exit "$failed"
