#!/usr/bin/env bash
# Installs what kiln needs to build and test from Debian's packages. Idempotent: a
# package already present is not fetched again, and apt runs only when one is missing.
set -euo pipefail

packages=(
    build-essential cmake pkg-config
    libuv1-dev libwebsockets-dev libcjson-dev libstb-dev libxxhash-dev zlib1g-dev
    libopenblas-dev curl clang-format
    chromium
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The server tests drive WebSocket clients with node; install Debian's Node.js only when
# the machine has none (a newer one from elsewhere is left alone).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    echo "setup: installing nodejs npm"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends nodejs npm
fi

# web/ (the editor) builds with Node.js >= 20.19 and npm; Debian 12's nodejs is older, so
# it is not installed from here: say so clearly instead.
node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null ||
    echo "setup: web/ needs Node.js >= 20.19 and npm (Debian 13's nodejs; NodeSource on Debian 12)" >&2
