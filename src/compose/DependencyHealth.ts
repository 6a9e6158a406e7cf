/**
 * What grpc.health.v1 reports, from the dependencies: every `probeMs` each
 * dependency is checked (Postgres: a round trip with its own short timeout;
 * Redlock: a quorum of masters connected); one that has not passed a check
 * for `unhealthyAfterMs` is down, and the services that need it answer
 * NOT_SERVING until a check passes again. Each transition is logged once.
 * The server combines this with its own state (not yet listening, shutting
 * down), so a probe never turns a stopping server back to SERVING.
 */
import type { Logger } from "../log/Logger";

export interface Dependency {
  /** "postgres", "redlock": the name in logs and the metric label. */
  readonly name: string;
  /** Resolves when the dependency is usable; rejects (with the cause) when not. */
  check(): Promise<void>;
  /** The health service names that need it ("" is the overall status). */
  readonly services: readonly string[];
}

export interface DependencyHealthOptions {
  probeMs: number;
  unhealthyAfterMs: number;
  /** Told which services are down (by the dependencies that are down), after every change. */
  onChange(downServices: ReadonlySet<string>): void;
  /** Per dependency: up or down (a metric gauge). */
  onDependency?(name: string, up: boolean): void;
}

interface State {
  lastOk: number;
  up: boolean;
  inFlight: boolean;
  lastError: string | undefined;
}

export class DependencyHealth {
  private readonly states = new Map<string, State>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: readonly Dependency[],
    private readonly opts: DependencyHealthOptions,
    private readonly log: Logger,
  ) {
    const now = Date.now();
    for (const d of deps) this.states.set(d.name, { lastOk: now, up: true, inFlight: false, lastError: undefined });
  }

  start(): void {
    for (const d of this.deps) this.opts.onDependency?.(d.name, true);
    this.timer = setInterval(() => this.tick(), this.opts.probeMs);
    this.timer.unref();
    this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = Date.now();
    let changed = false;
    for (const d of this.deps) {
      const s = this.states.get(d.name)!;
      // A check still running counts as not passed yet (a frozen Postgres).
      if (!s.inFlight) {
        s.inFlight = true;
        d.check().then(
          () => {
            s.inFlight = false;
            s.lastOk = Date.now();
            s.lastError = undefined;
            if (!s.up) this.transition(d, s, true);
          },
          (err: unknown) => {
            s.inFlight = false;
            s.lastError = err instanceof Error ? err.message : String(err);
          },
        );
      }
      if (s.up && now - s.lastOk > this.opts.unhealthyAfterMs) {
        s.up = false;
        changed = true;
        this.announce(d, s);
      }
    }
    if (changed) this.publish();
  }

  private transition(d: Dependency, s: State, up: boolean): void {
    if (!this.timer) return; // stopped: the server is going away
    s.up = up;
    this.announce(d, s);
    this.publish();
  }

  private announce(d: Dependency, s: State): void {
    this.opts.onDependency?.(d.name, s.up);
    if (s.up) {
      this.log.info("dependency back: serving", { dependency: d.name, services: d.services });
    } else {
      this.log.warn("dependency down: not serving", {
        dependency: d.name,
        services: d.services,
        downForMs: Date.now() - s.lastOk,
        reason: s.lastError ?? "no answer yet",
      });
    }
  }

  private publish(): void {
    const down = new Set<string>();
    for (const d of this.deps) if (!this.states.get(d.name)!.up) for (const svc of d.services) down.add(svc);
    this.opts.onChange(down);
  }
}
