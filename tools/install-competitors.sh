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
# The package lists may be empty on a fresh image: update once if a package is unknown to apt.
if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
  "${sudo[@]}" apt-get update
fi
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
echo "installed: ${missing[*]}"
