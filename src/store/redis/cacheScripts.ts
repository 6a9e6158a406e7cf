/**
 * Registers the cache's Lua scripts (./lua/<name>-<numKeys>.lua, or
 * <name>-n.lua for a script called with its number of keys first; each opening
 * with its KEYS/ARGV/result contract, after the shared functions it calls from
 * ./lua/lib) on an ioredis client with defineCommand.
 * The files are copied into the build and read from there.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Cluster } from "ioredis";
import type Redis from "ioredis";

type Arg = string | Buffer;

export interface CacheCommands {
  cacheRead(...args: Arg[]): Promise<unknown>;
  cacheReadBuffer(...args: Arg[]): Promise<unknown>;
  cacheFill(...args: Arg[]): Promise<number>;
  cacheBeginWrite(...args: Arg[]): Promise<number>;
  /** Takes the number of keys first (cacheEndWrite-n.lua: a batch of writes); one code per write. */
  cacheEndWrite(...args: Arg[]): Promise<number[]>;
  cacheNoteRevision(...args: Arg[]): Promise<number>;
}

/** The cache's connection with its scripts: one Redis, or a Redis Cluster (every script's KEYS in one slot). */
export type CacheRedis = (Redis | Cluster) & CacheCommands;

export const LUA_DIR = join(__dirname, "lua");

/**
 * Functions shared by several scripts (./lua/lib/<name>.lua, each defining the
 * local function `name`): prepended to every script that calls one, so it is
 * written once.
 */
export const LUA_LIB_DIR = join(LUA_DIR, "lib");

/** A script's text as Redis runs it: the shared functions it calls, then its own file. */
export function scriptSource(file: string): string {
  const own = readFileSync(join(LUA_DIR, file), "utf8");
  const libs = readdirSync(LUA_LIB_DIR)
    .filter((f) => f.endsWith(".lua") && new RegExp(`\\b${f.slice(0, -4)}\\(`).test(own))
    .sort()
    .map((f) => readFileSync(join(LUA_LIB_DIR, f), "utf8"));
  return [...libs, own].join("\n");
}

export function defineCacheScripts<R extends Redis | Cluster>(redis: R): R & CacheCommands {
  for (const file of readdirSync(LUA_DIR)) {
    const m = /^([A-Za-z]+)-(\d+|n)\.lua$/.exec(file);
    if (!m) continue;
    const numberOfKeys = m[2] === "n" ? undefined : Number(m[2]);
    redis.defineCommand(m[1]!, { numberOfKeys, lua: scriptSource(file) });
  }
  return redis as R & CacheCommands;
}
