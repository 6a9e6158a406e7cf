/**
 * PostgresItemStore: StoreService's items in the `store_items` table
 * (migrations/0010). Each operation is one statement (sql/store_*.sql) and
 * its own transaction; a put commits before it is answered (guarantee 1).
 * Paths cross into SQL as their labels joined by "." (domain/itemRules.ts).
 */
import type { Pool } from "pg";
import type {
  ItemAddress,
  ItemStore,
  ListPathsQuery,
  PutItemCommand,
  SearchItemsQuery,
  StoreItem,
} from "../../domain/items";
import type { Actor } from "../../domain/types";
import { PATH_SEPARATOR } from "../../domain/itemRules";
import { translatePgError } from "./pgErrors";
import { sql, type Statement } from "./sql";

interface ItemRow {
  path: string;
  key: string;
  value_json: string;
  created_at: Date;
  updated_at: Date;
  expires_at: Date | null;
}

function joinPath(labels: readonly string[]): string {
  return labels.join(PATH_SEPARATOR);
}

function rowToStoreItem(r: ItemRow): StoreItem {
  return {
    path: r.path.split(PATH_SEPARATOR),
    key: r.key,
    valueJson: r.value_json,
    createTime: r.created_at,
    updateTime: r.updated_at,
    expireTime: r.expires_at ?? undefined,
  };
}

export class PostgresItemStore implements ItemStore {
  constructor(private readonly pool: Pool) {}

  async put(cmd: PutItemCommand, actor?: Actor): Promise<StoreItem> {
    const res = await this.query<ItemRow>(
      sql("store_put"),
      [
        cmd.namespace,
        joinPath(cmd.path),
        cmd.key,
        cmd.valueJson,
        cmd.ttlMs ?? null,
        actor?.principal ?? null,
        actor?.requestId ?? null,
      ],
      true,
    );
    return rowToStoreItem(res.rows[0]!);
  }

  async get(a: ItemAddress, refreshTtl: boolean): Promise<StoreItem | undefined> {
    const res = await this.query<ItemRow>(sql("store_get"), [a.namespace, joinPath(a.path), a.key, refreshTtl]);
    const row = res.rows[0];
    return row && rowToStoreItem(row);
  }

  async delete(a: ItemAddress, actor?: Actor): Promise<boolean> {
    const res = await this.query<{ live: boolean }>(
      sql("store_delete"),
      [a.namespace, joinPath(a.path), a.key, actor?.principal ?? null, actor?.requestId ?? null],
      true,
    );
    return res.rows[0]?.live === true;
  }

  async search(q: SearchItemsQuery): Promise<StoreItem[]> {
    const conditions = q.filter.conditions.map((c) => ({ k: c.field, op: c.op, v: c.value }));
    const res = await this.query<ItemRow>(sql("store_search"), [
      q.namespace,
      joinPath(q.pathPrefix),
      JSON.stringify(q.filter.contains),
      JSON.stringify(conditions),
      q.limit,
      q.offset,
      q.refreshTtl,
    ]);
    return res.rows.map(rowToStoreItem);
  }

  async listPaths(q: ListPathsQuery): Promise<string[][]> {
    const res = await this.query<{ labels: string[] }>(sql("store_list_paths"), [
      q.namespace,
      q.prefix,
      q.suffix,
      q.maxDepth,
      q.limit,
      q.offset,
    ]);
    return res.rows.map((r) => r.labels);
  }

  private async query<R extends object>(statement: Statement, values: unknown[], write = false) {
    try {
      return await this.pool.query<R>(statement, values);
    } catch (err) {
      throw translatePgError(err, write);
    }
  }
}
