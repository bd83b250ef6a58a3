#!/usr/bin/env bash
# Work-queue chaos against a real `fastbroker serve`: N messages of 1,000 bytes, then ROUNDS slow consumers
# (`sub --group g` piped into a reader taking 5 ms a line, so each holds its prefetch of 64) killed with SIGKILL after
# 2 s each, then a last consumer drains what is left. Prints how many lines the last consumer got and the group's
# acked / redelivered / dead-lettered counters. Redelivered counts the deliveries that used up an attempt: with each
# kill only the delivery its consumer was working on does (docs/protocol.md §8), not its whole prefetch.
# Usage: tools/workqueue-chaos.sh   (env: N=2000 ROUNDS=20 PORT=7650; F=path/to/fastbroker.dll)
set -u
cd "$(dirname "$0")/.."
F=${F:-src/FastBroker.Cli/bin/Release/net10.0/fastbroker.dll}
[ -f "$F" ] || dotnet build src/FastBroker.Cli -c Release -f net10.0 -p:LibraryTargetFrameworks=net10.0 >/dev/null
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
PORT=${PORT:-7650}
dotnet "$F" serve --data "$D/data" --port "$PORT" --admin-port $((PORT + 1)) > "$D/serve.log" 2>&1 &
SP=$!
for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$((PORT + 1))/health" >/dev/null && break; sleep 0.2; done
BODY=$(head -c 1000 /dev/zero | tr '\0' 'x')
dotnet "$F" pub jobs "$BODY" -n "${N:-2000}" -q -s "127.0.0.1:$PORT"
for _ in $(seq 1 "${ROUNDS:-20}"); do
  dotnet "$F" sub jobs --group g -s "127.0.0.1:$PORT" 2>/dev/null | (while read -r _; do sleep 0.005; done) &
  J=$!
  sleep 2
  pkill -9 -f "fastbroker.dll sub jobs --group g -s 127.0.0.1:$PORT"
  wait "$J"
done
echo "last consumer: $(dotnet "$F" sub jobs --group g -s "127.0.0.1:$PORT" --timeout 5 2>/dev/null | wc -l) messages"
curl -s "http://127.0.0.1:$((PORT + 1))/metrics" | grep -E "^fastbroker_group_(acked|deadlettered|redelivered)_total"
kill "$SP"
wait "$SP"
