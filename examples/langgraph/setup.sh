#!/usr/bin/env bash
# Installs both examples from this checkout (run from anywhere; needs the
# checkout's `npm ci && npm run build` done, which generates the TypeScript
# client's code):
#   - typescript/: builds the local packages @agentstate/client and
#     @agentstate/langgraph, installs the example's pinned dependencies from its
#     lockfile (the two local packages as copies: .npmrc install-links) and
#     compiles agent.ts to dist/agent.js;
#   - python/: a venv in python/.venv with the pinned python/requirements.txt
#     and the local packages agentstate and langgraph-checkpoint-agentstate.
# Usage: examples/langgraph/setup.sh [typescript] [python]   (default: both)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(typescript python)

for lang in "${langs[@]}"; do
  case "$lang" in
  typescript)
    [ -d "$root/clients/typescript/src/gen" ] || { echo "setup: run npm ci && npm run build in $root first" >&2; exit 1; }
    echo "setup: typescript: building clients/typescript and clients/typescript-langgraph"
    "$root/node_modules/.bin/tsc" -p "$root/clients/typescript/tsconfig.json"
    npm --prefix "$root/clients/typescript-langgraph" ci --no-audit --no-fund --loglevel=error
    npm --prefix "$root/clients/typescript-langgraph" run --silent build
    echo "setup: typescript: npm ci + build in examples/langgraph/typescript"
    (cd "$here/typescript" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
    ;;
  python)
    echo "setup: python: venv in examples/langgraph/python/.venv"
    python3 -m venv "$here/python/.venv"
    "$here/python/.venv/bin/pip" install -q --disable-pip-version-check \
      -r "$here/python/requirements.txt" "$root/clients/python" "$root/clients/python-langgraph"
    # pip's build of the checkout
    rm -rf "$root/clients/python/build" "$root/clients/python/src/agentstate.egg-info" \
      "$root/clients/python-langgraph/build" "$root/clients/python-langgraph/src/langgraph_checkpoint_agentstate.egg-info"
    ;;
  *)
    echo "setup: unknown example $lang (typescript, python)" >&2
    exit 2
    ;;
  esac
done
