#!/usr/bin/env bash
# Installs the servers bench/FastBroker.Compare compares FastBroker with (Debian/Ubuntu packages): redis-server,
# nats-server and rabbitmq-server. Run as root (or with sudo). Nothing is started or enabled here: the tool and its
# tests start each server themselves as a child process on 127.0.0.1, with data in a temp directory.
set -euo pipefail

packages=(redis-server nats-server rabbitmq-server)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "competitors already installed: ${packages[*]}"
  exit 0
fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# The package lists may be empty on a fresh image: update first if apt has no installable version (no candidate) of
# a missing package. (`apt-cache show` is no test: it succeeds for a package dpkg still remembers, e.g. one purged.)
stale=0
for p in "${missing[@]}"; do
  candidate=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ { print $2 }')
  if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then stale=1; fi
done
if [ "$stale" -eq 1 ]; then
  "${sudo[@]}" apt-get update
fi
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; then
  # Lists present but out of date (a version the mirror no longer serves): update once and try again.
  "${sudo[@]}" apt-get update
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi
echo "installed: ${missing[*]}"
