#!/usr/bin/env bash
# A local failover pair to play with: a witness (127.0.0.1:7402) and nodes a (client 7400, admin 7401, replication
# 7410) and b (7500, 7501, 7510), data and logs under ./pair-data (of the directory you run it from). Prints how to
# publish, subscribe, look at the status, promote and kill; on a terminal it also takes commands (status, kill a,
# start a, promote b, …). Ctrl-C (or `quit`) stops everything it started.
# Usage: tools/pair.sh [extra serve options for both nodes, e.g. --acks standby-durable --degrade-to-local]
# Env: FASTBROKER="command" to run instead of the built dll (e.g. artifacts/aot/fastbroker);
#      PAIR_DATA=dir (default ./pair-data); REBUILD=1 to rebuild the dll first.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
data="$(mkdir -p "${PAIR_DATA:-pair-data}" && cd "${PAIR_DATA:-pair-data}" && pwd)"
mkdir -p "$data/logs"
extra=("$@")

if [ -n "${FASTBROKER:-}" ]; then
  read -r -a fb <<<"$FASTBROKER"
else
  # One build, then the dll: three `dotnet run`s would each check the build, and killing `dotnet run` would not
  # kill the node it started.
  dll="$repo/src/FastBroker.Cli/bin/Release/net10.0/fastbroker.dll"
  if [ ! -f "$dll" ] || [ "${REBUILD:-0}" = 1 ]; then
    echo "building fastbroker (dotnet build src/FastBroker.Cli -c Release -f net10.0) ..."
    dotnet build "$repo/src/FastBroker.Cli" -c Release -f net10.0 -v quiet -nologo >"$data/logs/build.log" 2>&1 \
      || { cat "$data/logs/build.log" >&2; exit 1; }
  fi
  fb=(dotnet "$dll")
fi
fbs="${fb[*]}"

declare -A pid=()
declare -A reported=()

start() {
  local name="$1" args=()
  case "$name" in
    witness) args=(witness --port 7402 --data "$data/witness") ;;
    a) args=(serve --data "$data/a" --port 7400 --admin-port 7401 --replication-port 7410 --peer 127.0.0.1:7510
             --node-id a --witness 127.0.0.1:7402 --heartbeat-timeout-ms 500 "${extra[@]}") ;;
    b) args=(serve --data "$data/b" --port 7500 --admin-port 7501 --replication-port 7510 --peer 127.0.0.1:7410
             --node-id b --witness 127.0.0.1:7402 --heartbeat-timeout-ms 500 "${extra[@]}") ;;
    *) echo "no such process: $name (witness, a or b)"; return ;;
  esac
  if [ -n "${pid[$name]:-}" ] && kill -0 "${pid[$name]}" 2>/dev/null; then
    echo "$name is already running (pid ${pid[$name]})"; return
  fi
  echo "--- $(date +%T) start ${fb[*]} ${args[*]}" >>"$data/logs/$name.log"
  # stdin from /dev/null: the children must not read the commands typed here.
  "${fb[@]}" "${args[@]}" </dev/null >>"$data/logs/$name.log" 2>&1 &
  pid[$name]=$!
  reported[$name]=""
  echo "started $name (pid ${pid[$name]}, log $data/logs/$name.log)"
}

stop_all() {
  trap - INT TERM EXIT
  echo
  echo "stopping the pair ..."
  for name in a b witness; do
    [ -n "${pid[$name]:-}" ] && kill -TERM "${pid[$name]}" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    alive=0
    for name in a b witness; do
      [ -n "${pid[$name]:-}" ] && kill -0 "${pid[$name]}" 2>/dev/null && alive=1
    done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for name in a b witness; do
    [ -n "${pid[$name]:-}" ] && kill -KILL "${pid[$name]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  echo "stopped (data kept in $data; delete it for a fresh pair)"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

role() { # role of node a|b from its /status, or "down"
  local port=7401
  [ "$1" = b ] && port=7501
  local json
  json="$(curl -sf --max-time 1 "http://127.0.0.1:$port/status" 2>/dev/null)" || { echo down; return; }
  sed -nE 's/^ *"role": *"([a-z]+)".*/\1/p' <<<"$json" | head -1
}

check_exits() {
  for name in witness a b; do
    if [ -n "${pid[$name]:-}" ] && ! kill -0 "${pid[$name]}" 2>/dev/null && [ -z "${reported[$name]}" ]; then
      rc=0; wait "${pid[$name]}" 2>/dev/null || rc=$?
      echo "$(date +%T) $name (pid ${pid[$name]}) exited with status $rc — 'start $name' to bring it back; last log lines:"
      tail -n 5 "$data/logs/$name.log" | sed 's/^/    /'
      reported[$name]=1
    fi
  done
}

start witness
# Nodes that cannot reach the witness at start settle as standby and promote only after a heartbeat timeout.
for _ in $(seq 1 200); do
  (exec 3<>/dev/tcp/127.0.0.1/7402) 2>/dev/null && break
  check_exits
  sleep 0.1
done
start a
start b

primary=""
for _ in $(seq 1 200); do
  check_exits
  for n in a b; do [ "$(role "$n")" = primary ] && primary="$n"; done
  [ -n "$primary" ] && break
  sleep 0.1
done
if [ -z "$primary" ]; then
  echo "no primary after 20 s (ports 7400-7402/7410/7500-7510 free? is curl installed?); logs in $data/logs" >&2
  exit 1
fi
if [ "$primary" = a ]; then client=7400; sbadmin=7501; other=b; else client=7500; sbadmin=7401; other=a; fi

cat <<EOF

pair up: primary '$primary' (client 127.0.0.1:$client), standby '$other' (does not listen for clients).
  publish:    $fbs pub --server 127.0.0.1:$client orders hello world
  subscribe:  $fbs sub --server 127.0.0.1:$client orders --from earliest
  status:     $fbs status --admin 127.0.0.1:7401 --admin 127.0.0.1:7501      (or curl http://127.0.0.1:7401/status)
  promote:    $fbs promote --admin 127.0.0.1:$sbadmin      (with the witness: only once the primary's lease ran out)
  kill:       kill -9 ${pid[$primary]}      (the primary, '$primary': '$other' takes over after ~1.5 s; clients given
              both endpoints reconnect, e.g. a .NET client with Endpoints = ["127.0.0.1:7400", "127.0.0.1:7500"])
  failover:   $fbs bench failover --rounds 3 --warmup 0     (its own pair, on free ports)
  logs:       tail -f $data/logs/{witness,a,b}.log
pids: witness ${pid[witness]}, a ${pid[a]}, b ${pid[b]}.  Ctrl-C stops everything.
EOF

if [ -t 0 ]; then
  echo "commands: status | kill a|b|witness | start a|b|witness | promote a|b | quit"
  printf '> '
  while true; do
    check_exits
    if read -r -t 1 cmd target; then
      case "$cmd" in
        status|s) "${fb[@]}" status --admin 127.0.0.1:7401 --admin 127.0.0.1:7501 | grep -E '^#|"(role|epoch|attached|connected|clientEndpoint)"' || true ;;
        kill|k)
          if [ -n "${pid[${target:-}]:-}" ]; then kill -9 "${pid[$target]}" 2>/dev/null && echo "killed $target (SIGKILL)"; sleep 0.2; check_exits
          else echo "kill what? (a, b or witness)"; fi ;;
        start|restart) start "${target:-}" ;;
        promote|p)
          case "${target:-}" in a) "${fb[@]}" promote --admin 127.0.0.1:7401 || true ;; b) "${fb[@]}" promote --admin 127.0.0.1:7501 || true ;;
            *) echo "promote which node? (a or b)" ;; esac ;;
        quit|exit|q) exit 0 ;;
        "") ;;
        *) echo "commands: status | kill a|b|witness | start a|b|witness | promote a|b | quit" ;;
      esac
      printf '> '
    else
      # read timed out (the 1 s tick that notices exited children: status > 128) or stdin closed
      rc=$?
      [ "$rc" -gt 128 ] || { echo; exit 0; }
    fi
  done
else
  while true; do check_exits; sleep 1; done
fi
