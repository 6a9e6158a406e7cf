/**
 * PostgresLockBackendRegistry: keeps the replicas of one database from
 * granting the same lock name under two lock backends at once (issue 19).
 * Postgres rows, Redlock over masters X and Redlock over masters Y do not
 * see each other's locks, so every replica registers its backend's identity
 * in `lock_backend_replicas` under a lease, renewed every third of the lease;
 * registrations are serialized by a table lock, so two replicas starting
 * together cannot both miss each other.
 *
 * The first backend to serve keeps the database: a replica may grant and
 * renew locks only while its row is `serving` and its lease has not run out
 * on its own clock (measured from before the renewal was sent, so it ends
 * before the database's). A replica of another backend registers too, but
 * refuses Lock and RenewLock (LockBackendMixError, FAILED_PRECONDITION) until
 * every serving row of the old backend has lapsed and drained: lease end plus
 * the longest lock it could have granted, by when every such lock has expired.
 * A replica that shuts down declares the latest expiry of the locks it
 * granted, so its row drains as soon as they have (not after the longest TTL
 * allowed).
 *
 * A mix (live replicas with another backend) is logged once at warn level per
 * distinct mix, with the backends' identities (masters as host:port, never a
 * URL), reported through `onMix` (the metric) and by `check` (health).
 */
import { Repeat } from "../../domain/repeat";
import type { Pool } from "pg";
import type { LockBackendGate } from "../../domain/locks";
import { LockBackendMixError, StoreUnavailableError } from "../../errors/errors";
import type { Logger } from "../../log/Logger";
import { checkout } from "./checkout";
import { isQueryReadTimeout, translatePgError } from "./pgErrors";
import { sql } from "./sql";

export interface LockBackendRegistryOptions {
  replicaId: string;
  /** The lock store's identity (LockStore.identity). */
  backend: string;
  /** The longest lock TTL this replica grants (AGENTSTATE_MAX_LOCK_TTL_SECONDS), in ms. */
  maxLockTtlMs: number;
  leaseMs: number;
  /** Told whether live replicas of the database keep their locks in another backend, after every registration. */
  onMix?(mixed: boolean): void;
  /** The latest expiry of any lock this replica granted or renewed (ms since epoch), declared on leaving. */
  grantedUntil?(): number;
}

/** Clock margin added to every lock's drain time: lock backends' clocks (Redis) against the database's. */
const CLOCK_MARGIN_MS = 1000;

interface Registration {
  serving: boolean;
  others: string[];
  blockedUntil: Date | null;
}

export class PostgresLockBackendRegistry implements LockBackendGate {
  /** Local time until which this replica may grant locks (0: not serving). */
  private servingUntil = 0;
  private last: Registration | undefined;
  private lastError: string | undefined;
  private currentMix = "";
  /** Every mix already logged at warn: each is logged once per process, however often it comes and goes. */
  private readonly loggedMixes = new Set<string>();
  /** Renews every lease/3, the next renewal once the last one settled. */
  private readonly renewal: Repeat;
  private stopped = false;

  constructor(
    private readonly pool: Pool,
    private readonly opts: LockBackendRegistryOptions,
    private readonly log: Logger,
  ) {
    this.renewal = new Repeat(() => this.register().catch(() => undefined), Math.floor(opts.leaseMs / 3));
  }

  /** Registers once (so the replica knows whether it may serve before it listens), then renews in the background. */
  async start(): Promise<Registration> {
    const r = await this.register();
    this.renewal.start(Math.floor(this.opts.leaseMs / 3));
    return r;
  }

  /** The other backends of live replicas, as of the last registration. */
  get mix(): readonly string[] {
    return this.last?.others ?? [];
  }

  check(): void {
    if (Date.now() < this.servingUntil) return;
    const last = this.last;
    if (last && !last.serving) {
      throw new LockBackendMixError(this.opts.backend, last.others, last.blockedUntil ?? undefined);
    }
    throw new StoreUnavailableError(
      `locks are refused: this replica could not renew its lock backend registration in Postgres${
        this.lastError ? ` (${this.lastError})` : ""
      }`,
    );
  }

  async register(): Promise<Registration> {
    const sentAt = Date.now();
    const { client, release } = await checkout(this.pool);
    let failed: unknown;
    let r: Registration;
    try {
      await client.query("BEGIN");
      await client.query(sql("lock_backend_serialize"));
      const res = await client.query<{ serving: boolean; others: string[]; blocked_until: Date | null }>(
        sql("lock_backend_register"),
        [this.opts.replicaId, this.opts.backend, this.opts.maxLockTtlMs + CLOCK_MARGIN_MS, this.opts.leaseMs],
      );
      await client.query("COMMIT");
      const row = res.rows[0]!;
      r = { serving: row.serving, others: row.others, blockedUntil: row.blocked_until };
    } catch (err) {
      failed = err;
      if (!isQueryReadTimeout(err)) await client.query("ROLLBACK").catch(() => undefined);
      this.lastError = (err as Error).message;
      throw translatePgError(err);
    } finally {
      release(failed);
    }
    this.lastError = undefined;
    if (this.stopped) return r;
    this.last = r;
    this.servingUntil = r.serving ? sentAt + this.opts.leaseMs : 0;
    this.noteMix(r);
    return r;
  }

  private noteMix(r: Registration): void {
    this.opts.onMix?.(r.others.length > 0);
    const mix = r.others.length > 0 ? `${r.serving}:${r.others.join("|")}` : "";
    if (mix === this.currentMix) return;
    this.currentMix = mix;
    if (mix === "") {
      this.log.info("lock backends agree again: every live replica keeps its locks in this backend", {
        backend: this.opts.backend,
      });
      return;
    }
    if (this.loggedMixes.has(mix)) return;
    this.loggedMixes.add(mix);
    this.log.warn(
      r.serving
        ? "lock backend mix: other replicas of this database keep their locks in another backend; they refuse Lock while this backend serves"
        : "lock backend mix: another backend serves this database's locks; this replica refuses Lock and RenewLock until it has drained",
      { backend: this.opts.backend, others: r.others, serving: r.serving, blocked_until: r.blockedUntil ?? undefined },
    );
  }

  /** Stops renewing and ends the lease now; the row drains once the locks this replica granted have expired. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.servingUntil = 0;
    await this.renewal.stop(); // a renewal in flight must not extend the lease after it ended
    const until = this.opts.grantedUntil?.() ?? Date.now() + this.opts.maxLockTtlMs;
    const drainMs = Math.max(0, Math.min(this.opts.maxLockTtlMs, until - Date.now())) + CLOCK_MARGIN_MS;
    await this.pool
      .query(sql("lock_backend_leave"), [this.opts.replicaId, drainMs])
      .catch((err: unknown) => this.log.debug("lock backend leave failed", { error: (err as Error).message }));
  }
}
