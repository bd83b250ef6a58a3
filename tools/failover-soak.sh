#!/usr/bin/env bash
# Failover soak, outside CI: the real-process failover test (witness + two `fastbroker serve` nodes, a producer
# publishing standby-durable without pause, kill -9 of the primary at a random moment, automatic promotion, restart
# of the killed node as standby) for many rounds. Every round checks that each confirmed message is on the new
# primary exactly once, in order, and prints the failover time (kill -> first confirmation on the new primary).
# Usage: tools/failover-soak.sh [rounds]   (default 50; about 5-8 s per round on a 2-core machine, most of it the
# killed primary's 4 s lease: the test runs the pair with a 2 s heartbeat timeout)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-50}"
FASTBROKER_FAILOVER_ROUNDS="$rounds" dotnet test tests/FastBroker.Replication.Tests -c Release \
  --filter "FullyQualifiedName~AutomaticFailoverTests.Failover_with_witness_loses_and_duplicates_no_confirmed_message" \
  --logger "console;verbosity=detailed"
