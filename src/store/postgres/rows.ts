/** Row <-> domain conversions shared by the Postgres adapters. */
import type { Item } from "../../domain/types";

export interface KvRow {
  key: Buffer;
  value: Buffer;
  content_type: string;
  version: number;
  create_revision: number;
  mod_revision: number;
  created_at: Date;
  updated_at: Date;
  expires_at: Date | null;
}

export function keyBytes(key: string): Buffer {
  return Buffer.from(key, "utf8");
}

export function rowToItem(r: KvRow): Item {
  return {
    key: r.key.toString("utf8"),
    value: r.value,
    contentType: r.content_type,
    version: r.version,
    createRevision: r.create_revision,
    modRevision: r.mod_revision,
    createTime: r.created_at,
    updateTime: r.updated_at,
    expireTime: r.expires_at ?? undefined,
  };
}

/**
 * JSON form of an item in idempotency records. Written by the database
 * (agentstate_item_json, functions/agentstate_item_json.sql), read back here.
 */
export interface ItemJson {
  k: string;
  v: string;
  ct: string;
  ver: number;
  cr: number;
  mr: number;
  ctm: string;
  utm: string;
  etm: string | null;
}

export function itemFromJson(j: ItemJson): Item {
  return {
    key: j.k,
    value: Buffer.from(j.v, "base64"),
    contentType: j.ct,
    version: j.ver,
    createRevision: j.cr,
    modRevision: j.mr,
    createTime: new Date(j.ctm),
    updateTime: new Date(j.utm),
    expireTime: j.etm === null ? undefined : new Date(j.etm),
  };
}
