#!/usr/bin/env bash
# Counts the descriptors a `fastbroker serve` process holds (/proc/PID/fd, classified by readlink) and its threads
# (/proc/PID/task) at four points: idle after start, after one topic was published to, with N clients connected and
# subscribed (tools/fd-clients.cs hold), and after they closed. With --limit L it then starts serve again under
# `ulimit -n L` and floods it with raw connections (tools/fd-clients.cs flood) until it closes one at accept, checks
# that it is still running, has logged the shortage, and serves a new client once the flood has closed.
# Each count is taken once the total has not changed for 1 s (a thread pool still growing shows up as a change).
# Usage: tools/fd-count.sh [--clients N] [--limit L] -- <fastbroker command...>
#   tools/fd-count.sh --limit 200 -- artifacts/aot/fastbroker
#   tools/fd-count.sh -- dotnet src/FastBroker.Cli/bin/Release/net10.0/fastbroker.dll
# Prints a Markdown table: total, sockets, pipes, eventfd, epoll, segment files (.seg), other files under the data
# directory, assembly or library files (.dll, .so), anything else (listed below the table), threads.
set -euo pipefail
cd "$(dirname "$0")/.."
clients=100
limit=""
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--clients N] [--limit L] -- <fastbroker command...>" >&2; exit 64 ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: $0 [--clients N] [--limit L] -- <fastbroker command...>" >&2; exit 64; }
fb=("$@")
tool=tools/fd-clients.cs
work=$(mktemp -d)
pid=""
holder=""
cleanup() {
  if [ -n "$holder" ] && kill -0 "$holder" 2>/dev/null; then kill "$holder" 2>/dev/null || true; fi
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  exec 9>&- 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "fd-count: FAILED: $*" >&2; echo "--- serve log:" >&2; tail -20 "$work/serve.log" >&2 || true; exit 1; }

# Waits (up to $2 seconds, default 60) for command $1 to succeed.
await() {
  local deadline=$(( $(date +%s) + ${2:-60} ))
  until eval "$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.05
  done
}

start_serve() { # $1: data directory; the serve log is $work/serve.log
  : >"$work/serve.log"
  "${fb[@]}" serve --data "$1" --port 0 --admin-port 0 >"$work/serve.log" 2>&1 &
  pid=$!
  await 'grep -q "listening on" "$work/serve.log" || ! kill -0 $pid 2>/dev/null' 60 || fail "serve did not listen within 60 s"
  kill -0 "$pid" 2>/dev/null || fail "serve exited"
  port=$(sed -nE 's/.*listening on [0-9.]+:([0-9]+).*/\1/p' "$work/serve.log")
}

fds() { ls "/proc/$pid/fd" 2>/dev/null | wc -l; }
sockets() { for f in /proc/"$pid"/fd/*; do readlink "$f" 2>/dev/null || true; done | grep -c '^socket:' || true; }

# Waits until the total has not changed for 1 s (at most 30 s).
settle() {
  local last now same=0 deadline=$(( $(date +%s) + 30 ))
  last=$(fds)
  while [ "$same" -lt 20 ] && [ "$(date +%s)" -lt "$deadline" ]; do
    sleep 0.05
    now=$(fds)
    if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
  done
}

count() { # $1: the row's label
  settle
  local sock=0 pipe=0 evfd=0 epoll=0 seg=0 data=0 lib=0 other=0 total=0 t others=()
  while read -r t; do
    total=$((total + 1))
    case "$t" in
      socket:*) sock=$((sock + 1)) ;;
      pipe:*) pipe=$((pipe + 1)) ;;
      anon_inode:\[eventfd\]) evfd=$((evfd + 1)) ;;
      anon_inode:\[eventpoll\]) epoll=$((epoll + 1)) ;;
      "$data_dir"/*.seg) seg=$((seg + 1)) ;;
      "$data_dir"/*) data=$((data + 1)); others+=("${t/#$work/\$work}") ;;
      *.dll | *.so | *.so.*) lib=$((lib + 1)) ;;
      *) other=$((other + 1)); others+=("${t/#$work/\$work}") ;;
    esac
  done < <(for f in /proc/"$pid"/fd/*; do readlink "$f" 2>/dev/null || true; done)
  [ ${#others[@]} -eq 0 ] || printf '%s: %s\n' "$1" "$(printf '%s\n' "${others[@]}" | sort | uniq -c | awk '{print $2 " ×" $1}' | paste -sd, -)" >>"$work/other"
  local threads
  threads=$(ls "/proc/$pid/task" | wc -l)
  echo "| $1 | $total | $sock | $pipe | $evfd | $epoll | $seg | $data | $lib | $other | $threads |"
}

echo "fd-count: ${fb[*]} (soft ulimit -n $(ulimit -n))"
data_dir="$work/data"
start_serve "$data_dir"
echo "| point | total | sockets | pipes | eventfd | epoll | .seg | other data files | .dll/.so | other | threads |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
count "idle after start"
"${fb[@]}" pub --server "127.0.0.1:$port" fd.topic "one message" >"$work/pub.out" 2>&1 || fail "pub: $(cat "$work/pub.out")"
count "after 1 topic published to"
sockets_before=$(sockets)
mkfifo "$work/in"
dotnet run -c Release "$tool" -- hold "127.0.0.1:$port" "$clients" fd.topic <"$work/in" >"$work/hold.out" 2>&1 &
holder=$!
exec 9>"$work/in"
await "grep -q '^held' '$work/hold.out' || ! kill -0 $holder 2>/dev/null" 300 || fail "the clients did not connect within 300 s"
grep -q "^held $clients" "$work/hold.out" || fail "holder: $(cat "$work/hold.out")"
count "$clients clients connected and subscribed"
echo >&9
exec 9>&-
await "grep -q '^released' '$work/hold.out'" 60 || fail "holder did not release: $(cat "$work/hold.out")"
wait "$holder" || true
holder=""
await '[ "$(sockets)" -le "$sockets_before" ]' 60 || fail "the server did not close the clients' sockets"
count "after the clients closed"
[ -s "$work/other" ] && { echo; echo "files other than segments (with the data directory's), libraries and assemblies:"; cat "$work/other"; : >"$work/other"; }
kill -TERM "$pid"
await '! kill -0 $pid 2>/dev/null' 30 || fail "serve did not stop within 30 s of SIGTERM"
pid=""

[ -n "$limit" ] || exit 0
echo
echo "fd-count: serve under ulimit -n $limit, flooded with raw connections"
data_dir="$work/data-limit"
( ulimit -n "$limit"; exec "${fb[@]}" serve --data "$data_dir" --port 0 --admin-port 0 ) >"$work/serve.log" 2>&1 &
pid=$!
await 'grep -q "listening on" "$work/serve.log" || ! kill -0 $pid 2>/dev/null' 60 || fail "serve did not listen within 60 s"
kill -0 "$pid" 2>/dev/null || fail "serve exited under ulimit -n $limit"
port=$(sed -nE 's/.*listening on [0-9.]+:([0-9]+).*/\1/p' "$work/serve.log")
echo "| point | total | sockets | pipes | eventfd | epoll | .seg | other data files | .dll/.so | other | threads |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
count "idle under ulimit -n $limit"
dotnet run -c Release "$tool" -- flood "127.0.0.1:$port" $((limit * 2)) >"$work/flood.out" 2>&1 || { kill -0 "$pid" 2>/dev/null || fail "serve died: $(cat "$work/flood.out")"; fail "flood: $(cat "$work/flood.out")"; }
cat "$work/flood.out"
kill -0 "$pid" 2>/dev/null || fail "serve died during the flood"
grep -m1 "closed a connection at accept" "$work/serve.log" || fail "serve did not log the shortage"
grep -E "Out of memory|Unhandled exception" "$work/serve.log" && fail "serve logged a fatal error"
count "after the flood and one client"
[ -s "$work/other" ] && { echo; echo "files other than segments (with the data directory's), libraries and assemblies:"; cat "$work/other"; }
kill -TERM "$pid"
await '! kill -0 $pid 2>/dev/null' 30 || fail "serve did not stop within 30 s of SIGTERM"
rc=0; wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 0 ] || fail "serve exited with $rc after SIGTERM"
echo "fd-count: ok under ulimit -n $limit (flood closed at accept, broker running, next client served, SIGTERM → exit 0)"
