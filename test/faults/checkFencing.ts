/**
 * Fencing safety, checked against the truth in Postgres after a run:
 *  1. Per fenced key, the tokens of the writes that landed (kv_history, in
 *     revision order) never decrease: no write with a stale token landed
 *     after a write with a newer one.
 *  2. No write landed whose token was already superseded when it was sent:
 *     if Lock returned a newer token for the name before the write was
 *     invoked, the write must have been refused.
 *  3. Every landed token was issued (<= fencing_tokens.last_token).
 *  4. Tokens are unique per name and increase in real time: an acquisition
 *     that completed before another began has a smaller token.
 *  5. Every acknowledged fenced write is in the history (durable), exactly
 *     once; every write refused FENCE_STALE is not.
 *  6. No fenced write got an answer other than applied, FENCE_STALE or an
 *     indeterminate failure.
 */
import { pgQuery } from "../support/pgQuery";
import type { FencedWrite, LockAttempt } from "./LockWorkload";

export interface FencingReport {
  landedWrites: number;
  acknowledgedWrites: number;
  staleRefused: number;
  indeterminateWrites: number;
  acquisitions: number;
  violations: string[];
}

const TOKEN_RE = /^tok=(\d+);/;

export async function checkFencing(
  dbUrl: string,
  namespace: string,
  attempts: LockAttempt[],
  writes: FencedWrite[],
): Promise<FencingReport> {
  const violations: string[] = [];
  const add = (v: string) => {
    if (violations.length < 50) violations.push(v);
  };
  const rows = await pgQuery<{ revision: number; key: Buffer; op: number; value: Buffer | null }>(
    dbUrl,
    "SELECT revision::float8 AS revision, key, op, value FROM kv_history WHERE namespace = $1 ORDER BY revision",
    [namespace],
  );
  const lastTokens = new Map(
    (
      await pgQuery<{ name: string; last_token: number }>(
        dbUrl,
        "SELECT name, last_token::float8 AS last_token FROM fencing_tokens WHERE namespace = $1",
        [namespace],
      )
    ).map((r) => [r.name, r.last_token]),
  );
  const byValue = new Map(writes.map((w) => [w.value, w]));
  const landedCount = new Map<string, number>();
  const maxToken = new Map<string, { token: number; revision: number }>();

  for (const r of rows) {
    const key = r.key.toString("utf8");
    const value = r.value?.toString("utf8") ?? "";
    const m = TOKEN_RE.exec(value);
    if (r.op !== 1 || !m) {
      add(`kv_history revision ${r.revision}: unexpected op ${r.op} value ${JSON.stringify(value)} on ${key}`);
      continue;
    }
    const token = Number(m[1]);
    landedCount.set(value, (landedCount.get(value) ?? 0) + 1);
    const prev = maxToken.get(key);
    if (prev && token < prev.token) {
      add(
        `${key}: write with token ${token} landed at revision ${r.revision}, after a write with token ${prev.token} (revision ${prev.revision})`,
      );
    }
    if (!prev || token > prev.token) maxToken.set(key, { token, revision: r.revision });
    const w = byValue.get(value);
    if (!w) {
      add(`${key}: revision ${r.revision} holds a value no client wrote: ${value}`);
      continue;
    }
    const last = lastTokens.get(w.name);
    if (last === undefined || token > last) add(`${key}: landed token ${token} was never issued (last ${last})`);
    // A newer token handed to a client before this write was even sent.
    const newer = attempts.find(
      (a) => a.name === w.name && a.token !== undefined && a.token > token && a.complete < w.invoke,
    );
    if (newer) {
      add(
        `${key}: write ${value} (sent at ${w.invoke}) landed at revision ${r.revision} although token ${newer.token} had been returned at ${newer.complete}`,
      );
    }
  }

  // Tokens unique per name, increasing in real time.
  const acquired = attempts.filter((a) => a.token !== undefined);
  const byName = new Map<string, LockAttempt[]>();
  for (const a of acquired) byName.set(a.name, [...(byName.get(a.name) ?? []), a]);
  for (const [name, list] of byName) {
    const seen = new Map<number, LockAttempt>();
    for (const a of list) {
      const dup = seen.get(a.token!);
      if (dup) add(`lock ${name}: token ${a.token} returned twice (workers ${dup.worker} and ${a.worker})`);
      seen.set(a.token!, a);
    }
    const byComplete = [...list].sort((x, y) => x.complete - y.complete);
    for (const b of list) {
      // Every acquisition that completed before b was invoked must have a smaller token.
      for (const a of byComplete) {
        if (a.complete >= b.invoke) break;
        if (a.token! >= b.token!) {
          add(
            `lock ${name}: token ${b.token} (invoked at ${b.invoke}) is not above token ${a.token} (returned at ${a.complete})`,
          );
          break;
        }
      }
    }
  }

  let acknowledged = 0;
  for (const w of writes) {
    const n = landedCount.get(w.value) ?? 0;
    if (n > 1) add(`${w.key}: write ${w.value} landed ${n} times`);
    if (w.outcome === "applied") {
      acknowledged++;
      if (n === 0) add(`${w.key}: acknowledged write ${w.value} is not in kv_history (lost)`);
    }
    if (w.outcome === "stale" && n > 0) add(`${w.key}: write ${w.value} was refused FENCE_STALE but landed`);
    if (w.outcome === "other") add(`${w.key}: write ${w.value} answered ${w.error ?? "applied=false"}`);
  }

  return {
    landedWrites: rows.length,
    acknowledgedWrites: acknowledged,
    staleRefused: writes.filter((w) => w.outcome === "stale").length,
    indeterminateWrites: writes.filter((w) => w.outcome === "indeterminate").length,
    acquisitions: acquired.length,
    violations,
  };
}
