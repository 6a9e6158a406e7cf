/**
 * Event appends and subscriptions under faults. Appenders send batches of 1-3
 * events with client-chosen ids to a few streams through random replicas;
 * a batch whose call failed in flight is re-sent unchanged (same ids: a
 * replay, never a duplicate) until it is answered, up to a bound. Subscribers
 * (to every stream by prefix, and to single streams) run for the whole run
 * and reconnect after any error, on any replica, from the last position they
 * saw. checkEvents() compares what each saw with Postgres afterwards.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Metadata, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import {
  AppendEventRequest,
  SubscribeRequest,
  type EventServiceClient,
  type AppendEventResponse,
  type SubscribeResponse,
} from "../../clients/typescript/src/gen/agentstate/v1/event";
import { Backoff, nowNs } from "./clock";
import type { FaultCluster } from "./FaultCluster";
import { callError, CodeCounter, EXPECTED_INDETERMINATE } from "./grpcOutcome";
import type { Rng } from "./Rng";

export interface AppendRecord {
  worker: number;
  stream: string;
  ids: string[];
  invoke: number;
  complete: number;
  /** acked: answered applied (maybe as a replay); refused: answered applied=false; unknown: never answered. */
  outcome: "acked" | "refused" | "unknown";
  firstPosition?: number;
  firstVersion?: number;
  replayed?: boolean;
  attempts: number;
  errors: string[];
}

export interface ReceivedEvent {
  position: number;
  stream: string;
  version: number;
  id: string;
}

export type SubscriptionTargetSpec = { stream: string } | { streamPrefix: string };

export class Subscriber {
  readonly received: ReceivedEvent[] = [];
  /** Out-of-order or duplicate deliveries seen live. */
  readonly anomalies: string[] = [];
  sessions = 0;
  readonly endCodes: Record<string, number> = {};
  private stopped = false;
  private call: ClientReadableStream<SubscribeResponse> | undefined;
  private running: Promise<void> | undefined;

  constructor(
    readonly id: number,
    readonly target: SubscriptionTargetSpec,
    private readonly namespace: string,
    private readonly cluster: FaultCluster,
    private readonly rng: Rng,
  ) {}

  get lastPosition(): number {
    return this.received[this.received.length - 1]?.position ?? 0;
  }

  describe(): string {
    return "stream" in this.target ? `stream ${this.target.stream}` : `prefix "${this.target.streamPrefix}"`;
  }

  start(): void {
    this.running = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.call?.cancel();
    await this.running;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const replica = this.cluster.pick(this.rng);
      if (!replica) {
        await sleep(50);
        continue;
      }
      this.sessions++;
      const code = await this.session(replica.events);
      this.endCodes[code] = (this.endCodes[code] ?? 0) + 1;
      if (!this.stopped) await sleep(this.rng.int(20, 200));
    }
  }

  /** One subscription, until it ends; resolves with its end code. */
  private session(client: EventServiceClient): Promise<string> {
    return new Promise((resolve) => {
      const req = SubscribeRequest.fromPartial({
        namespace: this.namespace,
        ...("stream" in this.target ? { stream: this.target.stream } : { streamPrefix: this.target.streamPrefix }),
        afterPosition: this.lastPosition,
      });
      const call = client.subscribe(req);
      this.call = call;
      let settled = false;
      const done = (code: string) => {
        if (settled) return;
        settled = true;
        resolve(code);
      };
      call.on("data", (m: SubscribeResponse) => {
        const e = m.event;
        if (!e) return;
        const last = this.lastPosition;
        if (e.position <= last) {
          if (this.anomalies.length < 20)
            this.anomalies.push(`position ${e.position} delivered after ${last} (${e.stream} v${e.streamVersion})`);
          return;
        }
        this.received.push({ position: e.position, stream: e.stream, version: e.streamVersion, id: e.id });
      });
      call.on("error", (err: ServiceError) => done(callError(err).text.split(":")[0] ?? "ERROR"));
      call.on("end", () => done("END"));
    });
  }
}

export interface EventWorkloadOptions {
  namespace: string;
  streams: string[];
  appenders: number;
  deadlineMs: number;
  /** Re-sends of a batch whose call failed in flight. */
  maxAttempts: number;
}

export class EventWorkload {
  readonly appends: AppendRecord[] = [];
  readonly subscribers: Subscriber[] = [];
  readonly codes = new CodeCounter(EXPECTED_INDETERMINATE);

  constructor(
    private readonly cluster: FaultCluster,
    private readonly opts: EventWorkloadOptions,
  ) {}

  startSubscribers(rng: Rng, targets: SubscriptionTargetSpec[]): void {
    for (const [i, t] of targets.entries()) {
      const s = new Subscriber(i, t, this.opts.namespace, this.cluster, rng.fork());
      this.subscribers.push(s);
      s.start();
    }
  }

  async stopSubscribers(): Promise<void> {
    await Promise.all(this.subscribers.map((s) => s.stop()));
  }

  async run(rng: Rng, stop: () => boolean): Promise<void> {
    await Promise.all(Array.from({ length: this.opts.appenders }, (_, id) => this.appender(id, rng.fork(), stop)));
  }

  private async appender(id: number, rng: Rng, stop: () => boolean): Promise<void> {
    const { namespace, deadlineMs } = this.opts;
    let seq = 0;
    const known = new Map<string, number>();
    while (!stop()) {
      const stream = rng.pick(this.opts.streams);
      const n = rng.int(1, 3);
      const events = Array.from({ length: n }, (_, k) => ({
        id: randomUUID(),
        type: "fault-test",
        data: Buffer.from(`a${id}-${++seq}-${k}`),
        metadata: { worker: String(id) },
      }));
      const v = known.get(stream);
      const expected = v !== undefined && rng.chance(0.2) ? { version: v } : { any: true };
      const rec: AppendRecord = {
        worker: id,
        stream,
        ids: events.map((e) => e.id),
        invoke: nowNs(),
        complete: 0,
        outcome: "unknown",
        attempts: 0,
        errors: [],
      };
      const req = AppendEventRequest.fromPartial({ namespace, stream, expected, events });
      const backoff = new Backoff();
      while (rec.attempts < this.opts.maxAttempts) {
        const replica = this.cluster.pick(rng);
        if (!replica) {
          await sleep(20);
          continue;
        }
        rec.attempts++;
        try {
          const res = await new Promise<AppendEventResponse>((resolve, reject) =>
            replica.events.appendEvent(
              req,
              new Metadata(),
              { deadline: new Date(Date.now() + deadlineMs) },
              (err: ServiceError | null, r: AppendEventResponse) => (err ? reject(err) : resolve(r)),
            ),
          );
          this.codes.ok();
          rec.complete = nowNs();
          if (res.applied) {
            rec.outcome = "acked";
            rec.firstPosition = res.position;
            rec.firstVersion = res.firstVersion;
            rec.replayed = res.replayed;
          } else {
            rec.outcome = "refused";
          }
          known.set(stream, res.currentVersion);
          break;
        } catch (err) {
          const e = callError(err);
          this.codes.add(e);
          rec.errors.push(e.text);
          if (!EXPECTED_INDETERMINATE.has(e.code)) break;
          // Stop re-sending once the run is over; the batch stays "unknown".
          if (stop()) break;
          await backoff.fail(rng.next());
        }
      }
      if (rec.complete === 0) rec.complete = nowNs();
      this.appends.push(rec);
    }
  }
}
