#!/usr/bin/env bash
# Runs each example against the agentstate server at AGENTSTATE_ADDRESS and
# checks what it shows (after ./setup.sh). For each language, on new threads:
#   1. reference: an uninterrupted run of the graph (topic "agent memory");
#   2. kill -9: the same run on another thread, SIGKILLed while it waits in its
#      3rd tool call (the checkpoint of step 3, after 2 tool calls, is stored:
#      the example runs with durability "sync");
#   3. resume: the same command again resumes from that checkpoint; the final
#      state equals the reference's and every node ran exactly once (the nodes'
#      side effects, one line each in $EFFECTS_FILE, equal the reference's);
#   4. history: the thread's 7 checkpoints, newest first;
#   5. time travel + fork: the state as of the checkpoint after "plan" (step 1);
#      a put on it without agentstate_fork is refused (strict mode: the
#      conflict names the head, nothing written); then a fork from it with
#      another topic ("vector search"), saying so (agentstate_fork): the new
#      branch's parent is that checkpoint, its final state equals an
#      uninterrupted run of that topic, the tools ran only for the new topic,
#      and the original branch is unchanged.
# With both languages, their transcripts (thread names aside) must be equal.
# Each failed check prints "FAIL: <language>: <what>"; the last line is
# "examples: N passed, M failed, 0 skipped"; the exit status is 1 if any failed.
# Usage: AGENTSTATE_ADDRESS=127.0.0.1:50051 examples/langgraph/run.sh [typescript] [python]
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${AGENTSTATE_ADDRESS:?set AGENTSTATE_ADDRESS to a running agentstate server, e.g. 127.0.0.1:50051}"
export AGENTSTATE_ADDRESS
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(typescript python)
work="$(mktemp -d "${TMPDIR:-/tmp}/agentstate-examples.XXXXXX")"
victim=""
cleanup() {
  [ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
run_id="$(date +%s)-$$" # new threads on every run: the example's namespace may hold older runs

passed=0
failed=0
declare -A transcript

# One language's scenario; returns 1 at its first failed check.
scenario() {
  local lang="$1" agent
  case "$lang" in
  typescript) agent=(node "$here/typescript/dist/agent.js") ;;
  python) agent=("$here/python/.venv/bin/python" "$here/python/agent.py") ;;
  *) echo "FAIL: unknown example $lang (typescript, python)"; return 1 ;;
  esac
  local ref="ref-$run_id" crash="crash-$run_id" other="ref-vector-$run_id" out="$work/$lang"
  export EFFECTS_FILE="$out.effects"
  : >"$EFFECTS_FILE"
  fail() { echo "FAIL: $lang: $1"; [ -n "${2:-}" ] && sed 's/^/    /' "$2"; return 1; }
  final_of() { sed -n 's/^final: //p' "$1"; }
  effects_of() { sed -n "s/^$1 //p" "$EFFECTS_FILE"; }
  say() { echo "$lang: $1"; }

  # 1. reference
  "${agent[@]}" run "$ref" "agent memory" >"$out.ref" 2>&1 || fail "the reference run failed" "$out.ref" || return 1
  say "reference run: $(final_of "$out.ref")"

  # 2. kill -9 in the middle
  "${agent[@]}" run "$crash" "agent memory" --block-at 3 >"$out.crash" 2>&1 &
  victim=$!
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q '^blocked: in tool call 3$' "$out.crash" && break
    kill -0 "$victim" 2>/dev/null || { fail "the run to interrupt exited before its 3rd tool call" "$out.crash"; return 1; }
    sleep 0.1
  done
  grep -q '^blocked: in tool call 3$' "$out.crash" || { fail "no \"blocked: in tool call 3\" within 60 s" "$out.crash"; return 1; }
  kill -KILL "$victim"
  wait "$victim" 2>/dev/null
  victim=""
  say "SIGKILLed while in tool call 3"
  "${agent[@]}" history "$crash" >"$out.h1" 2>&1 || fail "history after the kill failed" "$out.h1" || return 1
  [ "$(head -n 1 "$out.h1")" = 'step 3: next ["tool"], 2 findings' ] ||
    fail "after the kill the latest checkpoint is not step 3 (2 tool calls done, next tool)" "$out.h1" || return 1

  # 3. resume
  "${agent[@]}" run "$crash" "agent memory" >"$out.resume" 2>&1 || fail "the resumed run failed" "$out.resume" || return 1
  grep -qx 'resume: from step 3, next \["tool"\]' "$out.resume" ||
    fail "the second run did not resume from step 3" "$out.resume" || return 1
  [ "$(final_of "$out.resume")" = "$(final_of "$out.ref")" ] ||
    fail "the resumed run's final state differs from the uninterrupted run's" "$out.resume" || return 1
  [ "$(effects_of "$crash")" = "$(effects_of "$ref")" ] || {
    echo "  effects of the reference:"; effects_of "$ref" | sed 's/^/    /'
    echo "  effects of the interrupted + resumed run:"; effects_of "$crash" | sed 's/^/    /'
    fail "a node ran twice or not at all (side effects differ from the reference's)"
    return 1
  }
  say "resumed from step 3: same final state and side effects as the reference (each node once)"

  # 4. history
  "${agent[@]}" history "$crash" >"$out.h2" 2>&1 || fail "history failed" "$out.h2" || return 1
  [ "$(wc -l <"$out.h2")" -eq 7 ] && [ "$(head -n 1 "$out.h2")" = 'step 5: next [], 3 findings' ] &&
    [ "$(tail -n 1 "$out.h2")" = 'step -1: next ["__start__"], 0 findings' ] ||
    fail "the history is not the 7 checkpoints of steps 5 down to -1" "$out.h2" || return 1
  say "history: 7 checkpoints, steps 5 down to -1"

  # 5. time travel + fork
  "${agent[@]}" run "$other" "vector search" >"$out.other" 2>&1 || fail "the reference run of the fork's topic failed" "$out.other" || return 1
  local before_fork
  before_fork="$(effects_of "$crash")"
  "${agent[@]}" fork "$crash" "vector search" >"$out.fork" 2>&1 || fail "the fork failed" "$out.fork" || return 1
  local queries='["agent memory: background", "agent memory: open problems", "agent memory: recent results"]'
  grep -qxF "as of step 1: {\"findings\": [], \"queries\": $queries, \"topic\": \"agent memory\"}" "$out.fork" ||
    fail "time travel: the state as of step 1 is not the plan without findings" "$out.fork" || return 1
  grep -qxF 'strict: without agentstate_fork the fork is refused, the head is step 5' "$out.fork" ||
    fail "strict mode: a fork without agentstate_fork was not refused with the head" "$out.fork" || return 1
  grep -qxF 'fork: parent is the checkpoint of step 1, next ["tool"]' "$out.fork" ||
    fail "the fork's parent is not the checkpoint of step 1" "$out.fork" || return 1
  [ "$(final_of "$out.fork")" = "$(final_of "$out.other")" ] ||
    fail "the fork's final state differs from an uninterrupted run of its topic" "$out.fork" || return 1
  [ "$(sed -n 's/^original branch: //p' "$out.fork")" = "$(final_of "$out.ref")" ] ||
    fail "the original branch changed" "$out.fork" || return 1
  [ "$(effects_of "$crash")" = "$before_fork"$'\n'"$(effects_of "$other" | grep -v '^plan ')" ] ||
    fail "the fork did not run exactly the new topic's tools and summarise" "$EFFECTS_FILE" || return 1
  "${agent[@]}" history "$crash" >"$out.h3" 2>&1 || fail "history after the fork failed" "$out.h3" || return 1
  [ "$(wc -l <"$out.h3")" -eq 12 ] && [ "$(head -n 1 "$out.h3")" = 'step 6: next [], 3 findings' ] ||
    fail "after the fork the history is not the fork's 5 checkpoints (head: step 6) and the 7 before" "$out.h3" || return 1
  say "strict mode refused the fork without agentstate_fork; time travel to step 1, fork with \"vector search\": new branch from step 1 = an uninterrupted run of it, original branch unchanged"

  # What both languages must print alike (thread names aside).
  transcript[$lang]="$(cat "$out.ref" "$out.h1" "$out.resume" "$out.h2" "$out.fork" "$out.h3"; sed "s/-$run_id / /" "$EFFECTS_FILE")"
}

for lang in "${langs[@]}"; do
  if scenario "$lang"; then
    echo "$lang: ok"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
done
if [ -n "${transcript[typescript]:-}" ] && [ -n "${transcript[python]:-}" ]; then
  if [ "${transcript[typescript]}" = "${transcript[python]}" ]; then
    echo "typescript and python printed the same transcript"
    passed=$((passed + 1))
  else
    echo "FAIL: typescript and python printed different transcripts:"
    diff <(echo "${transcript[typescript]}") <(echo "${transcript[python]}") | sed 's/^/    /'
    failed=$((failed + 1))
  fi
fi
echo "examples: $passed passed, $failed failed, 0 skipped"
[ "$failed" = 0 ]
