#!/usr/bin/env bash
# Runs every test project, as CI does (.ci/run calls exactly this). Arguments go to each `dotnet test` (e.g.
# --filter "FullyQualifiedName~Reconnect").
#
# Why not plain `dotnet test FastBroker.sln`: it runs the test projects on MSBuild's nodes (two here), and where
# the longest project (the replication tests, 5-6 min) lands in that schedule is luck: in CI it often started last,
# or with the other node idle beside it, and the suite took 13-15 min. Here the solution is built once, then the
# replication tests run in one lane from the start and the other projects one after another in a second lane, then
# the native-AOT smoke test, so both cores work throughout. The lanes' outputs are printed whole, one after the other, never
# interleaved: each project still ends with its own "Passed!/Failed!  - Failed: N, Passed: N, ..." line.
set -uo pipefail
cd "$(dirname "$0")/.."
long=tests/FastBroker.Replication.Tests/FastBroker.Replication.Tests.csproj

echo "== build (FastBroker.sln, Release, every target framework)"
if ! dotnet build FastBroker.sln -c Release; then
  echo "build failed" >&2
  exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== $(basename "$long" .csproj) in a lane of its own (printed when it ends), the other projects beside it"
(dotnet test "$long" -c Release --no-build "$@" > "$out/long.log" 2>&1; echo $? > "$out/long.rc") &
lane=$!

rc=0
while IFS= read -r project; do
  [ "$project" = "$long" ] && continue
  dotnet test "$project" -c Release --no-build "$@" || rc=1
done < <(find tests -name '*.Tests.csproj' | sort)

# The native-AOT binary, in the second lane too (without arguments only: a filtered run is about tests): built with
# warnings as errors (an AOT or trim warning fails it) and driven end to end (tools/aot-smoke.sh). It counts as one
# test, and prints its result in the projects' form so that a total over this output counts it.
if [ $# -eq 0 ]; then
  echo "== native AOT build + smoke test (serve, pub, sub, /health, /metrics, a connection flood, SIGTERM)"
  started=$SECONDS
  if tools/aot-smoke.sh; then
    echo "Passed!  - Failed:     0, Passed:     1, Skipped:     0, Total:     1, Duration: $((SECONDS - started)) s - native AOT smoke (tools/aot-smoke.sh)"
  else
    echo "Failed!  - Failed:     1, Passed:     0, Skipped:     0, Total:     1, Duration: $((SECONDS - started)) s - native AOT smoke (tools/aot-smoke.sh)"
    rc=1
  fi
fi

wait "$lane"
echo "== $(basename "$long" .csproj)"
cat "$out/long.log"
[ "$(cat "$out/long.rc" 2>/dev/null || echo 1)" = 0 ] || rc=1
exit "$rc"
