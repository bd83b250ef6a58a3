#!/usr/bin/env bash
# Runs every test project, as CI does (.ci/run calls exactly this), after installing the competitor servers the compare
# tests drive if they are missing (below). Arguments go to each `dotnet test` (e.g. --filter "FullyQualifiedName~Reconnect").
#
# Why not plain `dotnet test FastBroker.sln`: it runs the test projects on MSBuild's nodes (two here), and where
# the longest project (the replication tests, 5-7 min) lands in that schedule is luck: in CI it often started last,
# or with the other node idle beside it, and the suite took 13-15 min. Here the solution is built once, then two
# lanes (one per core) take the jobs from one list, longest first: the replication tests, the native-AOT smoke test,
# then the other projects. A lane that ends its job takes the next one not taken, so neither core idles while work is
# left, whichever job runs long on the day. Each job's output is printed whole when it ends, never interleaved with
# another's: each project still ends with its own "Passed!/Failed!  - Failed: N, Passed: N, ..." line.
set -uo pipefail
cd "$(dirname "$0")/.."

# The lanes' claims, logs and lock live in the checkout (artifacts/, ignored by git), not in /tmp, where the tests
# create and delete hundreds of directories: in one CI-like run this directory vanished from /tmp mid-run (not traced;
# the lanes then could not claim or print, and 6 projects reported nothing).
mkdir -p artifacts
out=$(mktemp -d "$PWD/artifacts/test-lanes.XXXXXX")
trap 'rm -rf "$out"' EXIT

# tests/FastBroker.Compare.Tests drive real Redis, NATS and RabbitMQ servers (Debian packages; each test starts its own
# on 127.0.0.1). Installed while the solution builds (tools/install-competitors.sh, a no-op once they are there); the
# compare job waits for it (competitors_ready). Without root or password-less sudo nothing is installed, and the
# compare tests say which server is missing and how to install it.
if [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then
  ( timeout 600 tools/install-competitors.sh > "$out/install.log" 2>&1; echo $? > "$out/install.rc" ) > /dev/null 2>&1 &
  installer=$!
else
  echo "cannot install the competitor servers (not root, sudo asks for a password): run 'sudo tools/install-competitors.sh' once, or the compare tests fail" > "$out/install.log"
  echo 1 > "$out/install.rc"
  installer=""
fi

# Waits (bounded) for the installer and prints what it said.
competitors_ready() {
  local i=0
  while [ ! -s "$out/install.rc" ] && [ "$i" -lt 6200 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  echo "== competitor servers (tools/install-competitors.sh, exit $(cat "$out/install.rc" 2>/dev/null || echo 'still running after 620 s'))"
  tail -n 5 "$out/install.log"
}

# net10.0 only: the tests run on it, and the native-AOT job below publishes the executable for net9.0 (tools/publish-aot.sh,
# warnings as errors), which compiles every library for net9.0 itself (every net9.0 project is in the executable's
# closure). Building net9.0 here as well cost a third of the build (184 s against 121 s on 2 cores) and checked nothing
# more.
echo "== build (FastBroker.sln, Release, net10.0; net9.0 is compiled by the native-AOT job)"
if ! dotnet build FastBroker.sln -c Release -p:LibraryTargetFrameworks=net10.0; then
  echo "build failed" >&2
  [ -z "$installer" ] || wait "$installer" # never leave apt half way
  exit 1
fi

started=$SECONDS

# The jobs, longest first (the order of the last CI runs); projects not named here come after, in name order.
first=(tests/FastBroker.Replication.Tests/FastBroker.Replication.Tests.csproj aot-smoke
  tests/FastBroker.Journal.Tests/FastBroker.Journal.Tests.csproj tests/FastBroker.Broker.Tests/FastBroker.Broker.Tests.csproj
  tests/FastBroker.Client.Tests/FastBroker.Client.Tests.csproj)
jobs=()
for job in "${first[@]}"; do
  # The native-AOT binary only without arguments (a filtered run is about tests).
  if [ "$job" = aot-smoke ]; then [ $# -eq 0 ] && jobs+=("$job"); elif [ -f "$job" ]; then jobs+=("$job"); fi
done
while IFS= read -r project; do
  [[ " ${jobs[*]} " == *" $project "* ]] || jobs+=("$project")
done < <(find tests -name '*.Tests.csproj' | sort)

# The native-AOT binary: built with warnings as errors (an AOT or trim warning fails it) and driven end to end
# (tools/aot-smoke.sh). It counts as one test, and prints its result in the projects' form so that a total over this
# output counts it.
run_job() {
  local job=$1
  shift
  if [ "$job" = aot-smoke ]; then
    echo "== native AOT build + smoke test (serve, pub, sub, /health, /metrics, a connection flood, SIGTERM)"
    local t0=$SECONDS
    if tools/aot-smoke.sh; then
      echo "Passed!  - Failed:     0, Passed:     1, Skipped:     0, Total:     1, Duration: $((SECONDS - t0)) s - native AOT smoke (tools/aot-smoke.sh)"
    else
      echo "Failed!  - Failed:     1, Passed:     0, Skipped:     0, Total:     1, Duration: $((SECONDS - t0)) s - native AOT smoke (tools/aot-smoke.sh)"
      return 1
    fi
  else
    [[ "$job" != *FastBroker.Compare.Tests* ]] || competitors_ready
    dotnet test "$job" -c Release --no-build "$@"
  fi
}

# A lane claims a job by creating its directory (mkdir is atomic: one lane gets it), runs it into a log of its own,
# then prints the log under a lock.
lane() {
  local n=$1 i rc=0
  shift
  for i in "${!jobs[@]}"; do
    mkdir "$out/claim.$i" 2>/dev/null || continue
    local t0=$((SECONDS - started)) job_rc=0
    run_job "${jobs[$i]}" "$@" > "$out/job.$i.log" 2>&1 || job_rc=1
    [ "$job_rc" -eq 0 ] || rc=1
    {
      flock 9
      echo "== $(basename "${jobs[$i]}" .csproj) (lane $n, from $t0 s to $((SECONDS - started)) s after the build)"
      cat "$out/job.$i.log"
    } 9> "$out/print.lock"
  done
  return "$rc"
}

lane 1 "$@" &
one=$!
lane 2 "$@"
rc=$?
wait "$one" || rc=1
[ -z "$installer" ] || wait "$installer"
exit "$rc"
