/** The Markdown summary of a fault run, as recorded in test/faults/RESULTS.md. */
import type { FaultRunReport } from "./FaultRun";

export function resultsMarkdown(r: FaultRunReport, command: string): string {
  const p = r.kv.porcupine;
  const faults = Object.entries(r.faults.byKind)
    .sort()
    .map(([k, n]) => `| ${k} | ${n} |`)
    .join("\n");
  const codes = (c: Record<string, number> | undefined) =>
    c
      ? Object.entries(c)
          .sort()
          .map(([k, n]) => `${k} ${n}`)
          .join(", ")
      : "-";
  return `# Fault runs: last recorded result

Command: \`${command}\` (seed ${r.seed}), started ${r.startedAt},
workload ${(r.workloadMs / 1000).toFixed(0)} s, total ${(r.totalMs / 1000).toFixed(0)} s.

**Result: ${r.ok ? "PASS" : "FAIL"}**${
    r.failures.length
      ? "\n\n" +
        r.failures
          .slice(0, 20)
          .map((f) => `- ${f}`)
          .join("\n") +
        (r.failures.length > 20 ? `\n- ... and ${r.failures.length - 20} more (report.json)` : "")
      : ""
  }

## Key-value linearizability (Porcupine)

- KV operations completed: ${r.kv.completed} (history: ${r.kv.recorded} operations; ${r.kv.failedGets} failed Gets and ${r.kv.notSent} writes never sent dropped)
- Writes whose call failed in flight, settled from Postgres afterwards (idempotency records, kv_history): ${r.kv.resolved.committed} had committed (kept, with the recorded outcome and an open-ended return time), ${r.kv.resolved.dropped} had not (dropped), ${r.kv.resolved.unresolved} left indeterminate
- Checked: ${p?.operations ?? 0} operations on ${p?.keys ?? 0} keys: ${p?.gets ?? 0} Gets, ${p?.writes ?? 0} writes (${p?.appliedWrites ?? 0} applied, ${p?.committed ?? 0} settled as committed, ${p?.indeterminate ?? 0} indeterminate)
- Linearizable: **${p?.linearizable ? "yes" : "no"}** (Porcupine result ${p?.result}, ${p?.durationMs ?? 0} ms)
- Status codes: ${codes(r.kv.codes)}
- Cache read outcomes (every replica incarnation, from /metrics): ${codes(r.kv.cacheStats)}

## Locks and fencing

${
  r.locks
    ? `- Lock acquisitions: ${r.locks.acquisitions}; fenced writes acknowledged ${r.locks.acknowledgedWrites}, refused FENCE_STALE ${r.locks.staleRefused}, indeterminate ${r.locks.indeterminateWrites}; landed ${r.locks.landedWrites}
- Stale token landed: **${r.locks.violations.length === 0 ? "never" : `${r.locks.violations.length} violations`}**
- Status codes: ${codes(r.locks.codes)}`
    : "(not run)"
}

## Events

${
  r.events
    ? `- Events stored ${r.events.eventsInStore}; appends acknowledged ${r.events.acknowledgedAppends} (${r.events.acknowledgedEvents} events, ${r.events.replayedAppends} as replays), refused ${r.events.refusedAppends}, never answered ${r.events.unknownAppends}
- Subscribers: ${r.events.subscribers.map((s) => `${s.target}: ${s.received} events over ${s.sessions} sessions`).join("; ")}
- Every acknowledged event present once, in order, no gaps, for every subscriber: **${r.events.violations.length === 0 ? "yes" : "no"}**
- Status codes: ${codes(r.events.codes)}`
    : "(not run)"
}

## Revisions per namespace

- ${r.revisions.changes} changes in ${r.revisions.namespaces} namespaces; every namespace's revisions dense and given once: **${r.revisions.violations.length === 0 ? "yes" : "no"}**

## Faults injected: ${r.faults.total}

| kind | count |
| --- | --- |
${faults}
${r.faults.errors.length ? "\nFault injection errors:\n" + r.faults.errors.map((e) => `- ${e}`).join("\n") + "\n" : ""}
INTERNAL replies: ${(r.kv.codes.INTERNAL ?? 0) + (r.locks?.codes.INTERNAL ?? 0) + (r.events?.codes.INTERNAL ?? 0)}${
    Object.keys(r.knownInternal).length
      ? ", all of known bugs:\n" +
        Object.entries(r.knownInternal)
          .map(([bug, n]) => `- ${n} x ${bug}`)
          .join("\n")
      : "."
  }

Replica crashes (exits not caused by the harness; each was restarted): ${r.unexpectedExits.length}${
    Object.keys(r.knownCrashes).length
      ? ", of known bugs:\n" +
        Object.entries(r.knownCrashes)
          .map(([bug, n]) => `- ${n} x ${bug}`)
          .join("\n")
      : "."
  }
`;
}
