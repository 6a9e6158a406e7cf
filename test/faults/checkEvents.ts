/**
 * Event histories, checked against the truth in Postgres after a run:
 *  - per stream, versions are dense (1..n) in position order, positions unique;
 *  - every acknowledged append is present exactly once, at the positions and
 *    versions its reply gave (a replayed reply included);
 *  - an append answered applied=false left nothing; an append never
 *    answered is all there or not at all (a batch is atomic);
 *  - every subscriber, across all its reconnections, saw exactly the events
 *    of its target, each once, in position order, with no gaps.
 */
import { pgQuery } from "../support/pgQuery";
import type { AppendRecord, Subscriber } from "./EventWorkload";

export interface EventsReport {
  eventsInStore: number;
  acknowledgedAppends: number;
  acknowledgedEvents: number;
  replayedAppends: number;
  refusedAppends: number;
  unknownAppends: number;
  subscribers: { target: string; received: number; sessions: number; endCodes: Record<string, number> }[];
  violations: string[];
}

interface EventRow {
  position: number;
  stream: string;
  version: number;
  id: string;
}

export async function storedEvents(dbUrl: string, namespace: string): Promise<EventRow[]> {
  return pgQuery<EventRow>(
    dbUrl,
    `SELECT position::float8 AS position, stream, stream_version::float8 AS version, event_id::text AS id
       FROM events WHERE namespace = $1 ORDER BY position`,
    [namespace],
  );
}

export function matchesTarget(s: Subscriber, stream: string): boolean {
  return "stream" in s.target ? s.target.stream === stream : stream.startsWith(s.target.streamPrefix);
}

export async function checkEvents(
  dbUrl: string,
  namespace: string,
  appends: AppendRecord[],
  subscribers: Subscriber[],
): Promise<EventsReport> {
  const violations: string[] = [];
  const add = (v: string) => {
    if (violations.length < 50) violations.push(v);
  };
  const rows = await storedEvents(dbUrl, namespace);
  const byId = new Map<string, EventRow>();
  const lastVersion = new Map<string, number>();
  for (const r of rows) {
    if (byId.has(r.id)) add(`event id ${r.id} stored twice`);
    byId.set(r.id, r);
    const prev = lastVersion.get(r.stream) ?? 0;
    if (r.version !== prev + 1)
      add(`stream ${r.stream}: version ${r.version} follows ${prev} (position ${r.position})`);
    lastVersion.set(r.stream, r.version);
  }

  let acknowledgedEvents = 0;
  for (const a of appends) {
    const found = a.ids.map((id) => byId.get(id));
    const present = found.filter((f) => f !== undefined).length;
    if (a.outcome === "acked") {
      acknowledgedEvents += a.ids.length;
      for (const [i, f] of found.entries()) {
        if (!f) {
          add(`acknowledged event ${a.ids[i]} (${a.stream}) is missing`);
          continue;
        }
        if (f.stream !== a.stream) add(`event ${f.id} stored in ${f.stream}, appended to ${a.stream}`);
        if (f.position !== a.firstPosition! + i || f.version !== a.firstVersion! + i) {
          add(
            `event ${f.id}: stored at position ${f.position} v${f.version}, acknowledged at ${a.firstPosition! + i} v${a.firstVersion! + i}${a.replayed ? " (replayed)" : ""}`,
          );
        }
      }
    } else if (a.outcome === "refused") {
      if (present > 0) add(`append to ${a.stream} answered applied=false but ${present} of its events are stored`);
    } else if (present !== 0 && present !== a.ids.length) {
      add(`unanswered append to ${a.stream}: ${present} of ${a.ids.length} events stored (not atomic)`);
    }
  }

  const subs = [];
  for (const s of subscribers) {
    const expected = rows.filter((r) => matchesTarget(s, r.stream));
    const got = s.received;
    for (const a of s.anomalies) add(`subscriber ${s.id} (${s.describe()}): ${a}`);
    const n = Math.max(expected.length, got.length);
    for (let i = 0; i < n; i++) {
      const e = expected[i];
      const g = got[i];
      if (!e || !g || e.position !== g.position || e.id !== g.id || e.version !== g.version || e.stream !== g.stream) {
        add(
          `subscriber ${s.id} (${s.describe()}): event #${i}: expected ${e ? `${e.stream} v${e.version} @${e.position}` : "nothing"}, got ${g ? `${g.stream} v${g.version} @${g.position}` : "nothing"} (${got.length} received, ${expected.length} stored)`,
        );
        break;
      }
    }
    subs.push({ target: s.describe(), received: got.length, sessions: s.sessions, endCodes: s.endCodes });
  }

  return {
    eventsInStore: rows.length,
    acknowledgedAppends: appends.filter((a) => a.outcome === "acked").length,
    acknowledgedEvents,
    replayedAppends: appends.filter((a) => a.outcome === "acked" && a.replayed).length,
    refusedAppends: appends.filter((a) => a.outcome === "refused").length,
    unknownAppends: appends.filter((a) => a.outcome === "unknown").length,
    subscribers: subs,
    violations,
  };
}
