import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  type Client,
  type ClientReadableStream,
  type ServiceDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { Waiters } from "./Waiters";

export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface HealthResponse {
  status: ServingStatus;
}

type RawHealthClient = Client & {
  check(
    req: { service: string },
    md: Metadata,
    opts: { deadline: Date },
    cb: (err: ServiceError | null, res: HealthResponse) => void,
  ): void;
  watch(req: { service: string }): ClientReadableStream<HealthResponse>;
};

// The service definition grpc-health-check loads from its own health.proto
// (enums as strings), so the client needs no generated code.
const HealthClientCtor = makeGenericClientConstructor(
  healthService as unknown as ServiceDefinition,
  "grpc.health.v1.Health",
);

/** A grpc.health.v1 client: Check, and Watch as a list of statuses received so far. */
export class HealthClient {
  private readonly client: RawHealthClient;

  constructor(address: string) {
    this.client = new HealthClientCtor(address, credentials.createInsecure()) as unknown as RawHealthClient;
  }

  /** Health.Check for `service` ("" = the whole server). */
  check(service = "", deadlineMs = 5_000): Promise<ServingStatus> {
    return new Promise((resolve, reject) => {
      this.client.check({ service }, new Metadata(), { deadline: new Date(Date.now() + deadlineMs) }, (err, res) =>
        err ? reject(err) : resolve(res.status),
      );
    });
  }

  /** Health.Watch for `service`: every status pushed is recorded; `until` waits for one. */
  watch(service = ""): HealthWatch {
    return new HealthWatch(this.client.watch({ service }));
  }

  close(): void {
    this.client.close();
  }
}

export class HealthWatch {
  readonly statuses: ServingStatus[] = [];
  private ended: Error | undefined;
  private readonly waiters = new Waiters();

  constructor(private readonly call: ClientReadableStream<HealthResponse>) {
    call.on("data", (r: HealthResponse) => {
      this.statuses.push(r.status);
      this.notify();
    });
    call.on("error", (e: Error) => {
      this.ended = e;
      this.notify();
    });
    call.on("end", () => {
      this.ended ??= new Error("watch ended");
      this.notify();
    });
  }

  /** Resolves once `status` has been received (earlier ones count); rejects if the stream ends first. */
  until(status: ServingStatus, timeoutMs = 10_000): Promise<void> {
    return this.waiters
      .until(
        () => (this.statuses.includes(status) ? true : undefined),
        () => this.ended && `watch ended before ${status} (got ${this.statuses.join(", ")}): ${this.ended.message}`,
        () => `no ${status} within ${timeoutMs} ms (got ${this.statuses.join(", ") || "nothing"})`,
        timeoutMs,
      )
      .then(() => undefined);
  }

  cancel(): void {
    this.call.cancel();
  }

  private notify(): void {
    this.waiters.notify();
  }
}
