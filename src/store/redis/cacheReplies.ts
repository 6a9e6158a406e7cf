/**
 * The reply codes of the Lua scripts, by name. Each script declares the same
 * names as locals at its top (`local EPOCH_GONE = -1`) and returns only those;
 * a unit test reads the built scripts and checks the two lists agree.
 */

/** cacheRead-6.lua: the first element of its reply. */
export const CacheReadReply = {
  /** The epoch's alive key is missing or another's: the cache is not trusted. */
  EPOCH_GONE: -1,
  /** A write is in flight on the key: read Postgres, do not fill. */
  WRITE_IN_FLIGHT: 0,
  /** {HIT, revision, metadata, bytes, known revision}. */
  HIT: 1,
  /** {MISS, fill token}: read Postgres, then cacheFill with the token. */
  MISS: 2,
} as const;

/**
 * cacheFill-7.lua. EVICTED (also from cacheEndWrite and cacheNoteRevision): a
 * key without a TTL may have been evicted since the epoch was armed; nothing
 * was changed, and the epoch must move (CacheEpoch.evicted).
 */
export const CacheFillReply = { EPOCH_GONE: -1, EVICTED: -2, REFUSED: 0, STORED: 1 } as const;

/** cacheBeginWrite-6.lua. */
export const CacheBeginWriteReply = { EPOCH_GONE: -1, MARKED: 1 } as const;

/** cacheEndWrite-n.lua: one per write of the batch. */
export const CacheEndWriteReply = { EPOCH_GONE: -1, EVICTED: -2, NOT_INSTALLED: 0, INSTALLED: 1 } as const;

/** cacheNoteRevision-3.lua. */
export const CacheNoteRevisionReply = { EPOCH_GONE: -1, EVICTED: -2, DONE: 1 } as const;

/**
 * The lock scripts (run by redlock on every master). redlock counts a reply
 * equal to the number of KEYS (2) as a vote for, anything else as against.
 */
export const LockScriptReply = { VOTE_FOR: 2, VOTE_AGAINST: 0 } as const;

/** lockOwner-2.lua (run by RedlockLockStore itself on every master). */
export const LockOwnerReply = { NOT_HELD: 0, SET: 1 } as const;

/** Every script file (under lua/) and the replies it declares. */
export const SCRIPT_REPLIES: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  "cacheRead-6.lua": CacheReadReply,
  "cacheFill-7.lua": CacheFillReply,
  "cacheBeginWrite-6.lua": CacheBeginWriteReply,
  "cacheEndWrite-n.lua": CacheEndWriteReply,
  "cacheNoteRevision-3.lua": CacheNoteRevisionReply,
  /** Prepended to the three scripts above that call it (cacheScripts.ts): no replies of its own. */
  "lib/evictedSinceArm.lua": {},
  "locks/lockAcquire-2.lua": LockScriptReply,
  "locks/lockExtend-2.lua": LockScriptReply,
  "locks/lockRelease-2.lua": LockScriptReply,
  "locks/lockOwner-2.lua": LockOwnerReply,
};
