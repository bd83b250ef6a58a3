#!/usr/bin/env bash
# Builds the self-contained native `fastbroker` executable (linux-x64). net9.0: the net10.0 NativeAOT runtime
# pack is not on this machine's NuGet mirror. Needs gcc (or clang) for the native link step.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-artifacts/aot}"
dotnet publish src/FastBroker.Cli -f net9.0 -r linux-x64 -c Release -o "$out" -warnaserror
ls -la "$out/fastbroker"
