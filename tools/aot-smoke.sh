#!/usr/bin/env bash
# End-to-end smoke test of the native-AOT `fastbroker` binary: build it (tools/publish-aot.sh, warnings as
# errors), start `serve` on free ports, publish and subscribe with the same binary, check /health and /metrics,
# stop it with SIGTERM and check it exits cleanly. Prints the time from exec to "listening" (bar: < 200 ms).
# serve runs under `ulimit -n 128`: the smoke prints its descriptors and threads, floods it with 80 raw connections
# (bash's /dev/tcp), and checks that it closes those past the last 64 descriptors at accept, keeps running and
# serves a publish once the flood has closed (perf-reports/descriptors.md: about 13 of its own; 51 connections fit).
# Then `sub … | head -n 1` must end with 141 at the broken pipe (not ack or commit into it), and a second serve on the
# same data must stop cleanly on SIGHUP (exit 0, "stopped"), as on SIGTERM (docs/cli.md).
# Usage: tools/aot-smoke.sh [binary]   (with a binary given, skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then
  tools/publish-aot.sh artifacts/aot >/dev/null
  bin=artifacts/aot/fastbroker
fi
work=$(mktemp -d)
log="$work/serve.log"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "aot smoke: FAILED: $*" >&2; echo "--- serve log:" >&2; cat "$log" >&2 || true; exit 1; }
# Waits (10 s at most) for serve ($pid, logging to $log) to report it listens; $1 is added to the failure.
wait_listening() {
  for _ in $(seq 1 400); do
    grep -q "listening on" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || fail "serve exited early${1:-}"
    sleep 0.025
  done
  fail "serve did not report listening within 10 s${1:-}"
}

start_ns=$(date +%s%N)
( ulimit -n 128; exec "$bin" serve --data "$work/data" --port 0 --admin-port 0 ) >"$log" 2>&1 &
pid=$!
wait_listening
ready_ns=$(date +%s%N)
line=$(grep "listening on" "$log")
port=$(sed -E 's/.*listening on [0-9.]+:([0-9]+).*/\1/' <<<"$line")
admin=$(sed -E 's/.*admin http:\/\/([0-9.:]+)\/metrics.*/\1/' <<<"$line")
echo "aot smoke: $(stat -c %s "$bin") byte binary; listening on port $port after $(( (ready_ns - start_ns) / 1000000 )) ms wall (exec to log line, polled every 25 ms); $line"

"$bin" pub --server "127.0.0.1:$port" smoke.orders "hello from aot" >"$work/pub.out" 2>&1 || fail "pub: $(cat "$work/pub.out")"
grep -q "smoke.orders@0" "$work/pub.out" || fail "pub did not confirm offset 0: $(cat "$work/pub.out")"
timeout 20 "$bin" sub --server "127.0.0.1:$port" smoke.orders --from earliest --count 1 >"$work/sub.out" 2>&1 || fail "sub: $(cat "$work/sub.out")"
grep -q "hello from aot" "$work/sub.out" || fail "sub did not print the message: $(cat "$work/sub.out")"
curl -sf "http://$admin/health" >"$work/health.out" || fail "/health"
curl -sf "http://$admin/metrics" >"$work/metrics.out" || fail "/metrics"
grep -q 'smoke.orders' "$work/metrics.out" || fail "/metrics does not mention the topic"

echo "aot smoke: $(ls "/proc/$pid/fd" | wc -l) descriptors, $(ls "/proc/$pid/task" | wc -l) threads after pub and sub"
flood=()
for _ in $(seq 1 80); do
  exec {fd}<>"/dev/tcp/127.0.0.1/$port" || fail "flood connect"
  flood+=("$fd")
done
for _ in $(seq 1 400); do
  grep -q "closed a connection at accept: out of descriptors" "$log" && break
  kill -0 "$pid" 2>/dev/null || fail "serve died in a connection flood under ulimit -n 128"
  sleep 0.025
done
grep -q "closed a connection at accept: out of descriptors" "$log" || fail "serve did not close the flood past its reserve within 10 s"
kill -0 "$pid" 2>/dev/null || fail "serve died in a connection flood under ulimit -n 128"
for fd in "${flood[@]}"; do exec {fd}>&-; done
for _ in $(seq 1 400); do
  [ "$(ls "/proc/$pid/fd" | wc -l)" -lt 32 ] && break
  sleep 0.025
done
"$bin" pub --server "127.0.0.1:$port" smoke.orders "after the flood" >"$work/pub2.out" 2>&1 || fail "pub after the flood: $(cat "$work/pub2.out")"
grep -q "smoke.orders@1" "$work/pub2.out" || fail "pub after the flood did not confirm offset 1: $(cat "$work/pub2.out")"
echo "aot smoke: flood of 80 under ulimit -n 128 closed at accept past the reserve ($(grep -c "closed a connection at accept" "$log") log line(s)), served after"

# 20000 messages of 100 bytes: far more than a pipe holds once head has gone.
"$bin" pub --server "127.0.0.1:$port" smoke.pipe "$(printf 'x%.0s' $(seq 1 100))" --count 20000 -q >"$work/pub3.out" 2>&1 || fail "pub of 20000: $(cat "$work/pub3.out")"
set +e
timeout 60 "$bin" sub --server "127.0.0.1:$port" smoke.pipe --from earliest --durable smoke-pipe --count 20000 2>"$work/sub2.err" | head -n 1 >/dev/null
codes=("${PIPESTATUS[@]}")
set -e
rc=${codes[0]}
[ "$rc" -eq 141 ] && grep -q "broken pipe" "$work/sub2.err" || fail "sub | head -n 1: exit $rc (expected 141 at the broken pipe): $(cat "$work/sub2.err")"
echo "aot smoke: sub | head -n 1 stopped at the broken pipe with 141: $(cat "$work/sub2.err")"

kill -TERM "$pid"
for _ in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.025; done
kill -0 "$pid" 2>/dev/null && fail "serve did not stop within 10 s of SIGTERM"
rc=0; wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || fail "serve exited with $rc after SIGTERM"

# SIGHUP (a terminal that hung up) stops serve as SIGTERM does; its default action ended it with 129, no drain.
log="$work/serve2.log"
# With SIGHUP's default action given back: under nohup (or a CI runner that ignores SIGHUP) serve would inherit the
# ignored SIGHUP and, as documented, keep ignoring it.
env --default-signal=HUP "$bin" serve --data "$work/data" --port 0 --admin-port 0 >"$log" 2>&1 &
pid=$!
wait_listening " on its second start"
kill -HUP "$pid"
for _ in $(seq 1 400); do kill -0 "$pid" 2>/dev/null || break; sleep 0.025; done
kill -0 "$pid" 2>/dev/null && fail "serve did not stop within 10 s of SIGHUP"
rc=0; wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] && grep -q "fastbroker: stopped" "$log" || fail "serve exited with $rc after SIGHUP (expected 0 after 'fastbroker: stopped')"
echo "aot smoke: ok (serve, pub, sub, /health, /metrics, a connection flood under ulimit -n 128, sub | head → 141, SIGTERM and SIGHUP → exit 0)"
