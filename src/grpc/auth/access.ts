/**
 * Who may call what: the one table of authorization decisions, one line per
 * RPC (keyed by the name its handler gives the pipeline). Each line names the
 * role the RPC needs and how to read, from the request as received, what it
 * touches: its namespace and its key, stream or lock name (a Scope with
 * `key`), or a prefix (List, Subscribe by stream prefix: `prefix`, which a
 * grant covers only if the grant's prefix is a prefix of it).
 *
 * An RPC missing from the table is refused to everyone when auth is on (the
 * pipeline fails closed), so a new RPC joins by adding its line here.
 */
import type { Role, Scope } from "../../domain/principals";
import type {
  CreateTokenRequest,
  GrantRolesRequest,
  ListChangesRequest,
  RevokeGrantRequest,
} from "../../gen/agentstate/v1/admin";
import type {
  CopyThreadRequest,
  DeleteForRunsRequest,
  DeleteThreadRequest,
  GetCheckpointRequest,
  ListCheckpointsRequest,
  PruneCheckpointsRequest,
  PutCheckpointRequest,
  PutWritesRequest,
} from "../../gen/agentstate/v1/checkpoint";
import type {
  DeleteItemRequest,
  GetItemRequest,
  ListPathsRequest,
  PutItemRequest,
  SearchItemsRequest,
} from "../../gen/agentstate/v1/store";
import type { AppendEventRequest, ReadStreamRequest, SubscribeRequest } from "../../gen/agentstate/v1/event";
import type { CompareAndSetRequest, DeleteRequest, GetRequest, ListRequest } from "../../gen/agentstate/v1/kv";
import type { LockRequest, RenewLockRequest, UnlockRequest } from "../../gen/agentstate/v1/lock";
import { grantFromPb } from "../admin/codec";

export interface Access {
  readonly role: Role;
  /** What the request touches; every scope must be granted. */
  scopes(req: unknown): readonly Scope[];
}

function rule<Req>(role: Role, scopes: (req: Req) => Scope[]): Access {
  return { role, scopes: scopes as (req: unknown) => Scope[] };
}

const key = (namespace: string, k: string): Scope[] => [{ namespace, key: k }];
/** A whole namespace: what a grant with no prefix covers. */
const whole = (namespace: string): Scope[] => [{ namespace, prefix: "" }];
/**
 * A Store item as a grant's prefix sees it: each label of its path followed by
 * "." (labels cannot hold a "."), then the key: `["users", "u1"]`, key `k` is
 * "users.u1.k". A path prefix is its labels the same way ("users." for
 * `["users"]`), so a grant on "users." covers every item and search under
 * `["users"]` and nothing under `["usersx"]`.
 */
const pathScope = (labels: readonly string[]): string => labels.map((l) => `${l}.`).join("");
/** ListPaths' prefix may hold "*" (any one label): only the labels before the first one bound it. */
const pathPatternScope = (labels: readonly string[]): string => {
  const star = labels.indexOf("*");
  return pathScope(star === -1 ? labels : labels.slice(0, star));
};
/**
 * What a grant reaches, as a scope: its namespace pattern checked as a
 * namespace (a "*" only ends a pattern and never appears in a namespace, so
 * only a pattern at least as wide covers it), and its prefix.
 */
const grantScope = (namespace: string, prefix: string): Scope => ({ namespace, ...(prefix ? { prefix } : {}) });
/** Every namespace: what only a global admin (a grant on "*") reaches. */
const EVERYWHERE: Scope[] = [{ namespace: "*" }];

export const ACCESS: Readonly<Record<string, Access>> = Object.freeze({
  // agentstate.v1.KeyValueService
  Get: rule("read", (r: GetRequest) => key(r.namespace, r.key)),
  List: rule("read", (r: ListRequest) => [{ namespace: r.namespace, prefix: r.prefix }]),
  CompareAndSet: rule("write", (r: CompareAndSetRequest) => key(r.namespace, r.key)),
  Delete: rule("write", (r: DeleteRequest) => key(r.namespace, r.key)),
  // agentstate.v1.LockService: the lock name is the key a prefix bounds
  Lock: rule("lock", (r: LockRequest) => key(r.namespace, r.name)),
  Unlock: rule("lock", (r: UnlockRequest) => key(r.namespace, r.name)),
  RenewLock: rule("lock", (r: RenewLockRequest) => key(r.namespace, r.name)),
  // agentstate.v1.EventService: the stream name is the key a prefix bounds
  AppendEvent: rule("write", (r: AppendEventRequest) => key(r.namespace, r.stream)),
  ReadStream: rule("read", (r: ReadStreamRequest) => key(r.namespace, r.stream)),
  Subscribe: rule("read", (r: SubscribeRequest) =>
    r.stream !== undefined ? key(r.namespace, r.stream) : [{ namespace: r.namespace, prefix: r.streamPrefix ?? "" }],
  ),
  // agentstate.v1.StoreService: the item's path and key (pathScope) are what a prefix bounds
  PutItem: rule("write", (r: PutItemRequest) => key(r.namespace, pathScope(r.path) + r.key)),
  GetItem: rule("read", (r: GetItemRequest) => key(r.namespace, pathScope(r.path) + r.key)),
  DeleteItem: rule("write", (r: DeleteItemRequest) => key(r.namespace, pathScope(r.path) + r.key)),
  SearchItems: rule("read", (r: SearchItemsRequest) => [{ namespace: r.namespace, prefix: pathScope(r.pathPrefix) }]),
  ListPaths: rule("read", (r: ListPathsRequest) => [{ namespace: r.namespace, prefix: pathPatternScope(r.prefix) }]),
  // agentstate.v1.CheckpointService: the thread id is the key a prefix bounds; calls
  // across threads (a list of every thread, DeleteForRuns) need the whole namespace
  PutCheckpoint: rule("write", (r: PutCheckpointRequest) => key(r.namespace, r.threadId)),
  PutWrites: rule("write", (r: PutWritesRequest) => key(r.namespace, r.threadId)),
  GetCheckpoint: rule("read", (r: GetCheckpointRequest) => key(r.namespace, r.threadId)),
  ListCheckpoints: rule("read", (r: ListCheckpointsRequest) =>
    r.threadId === "" ? whole(r.namespace) : key(r.namespace, r.threadId),
  ),
  DeleteThread: rule("write", (r: DeleteThreadRequest) => key(r.namespace, r.threadId)),
  // Copying reads the source and writes the target: write on both.
  CopyThread: rule("write", (r: CopyThreadRequest) => [
    ...key(r.namespace, r.sourceThreadId),
    ...key(r.namespace, r.targetThreadId),
  ]),
  PruneCheckpoints: rule("write", (r: PruneCheckpointsRequest) =>
    r.threadIds.length === 0 ? whole(r.namespace) : r.threadIds.flatMap((t) => key(r.namespace, t)),
  ),
  DeleteForRuns: rule("write", (r: DeleteForRunsRequest) => whole(r.namespace)),
  // Session has no line: opening one takes authentication only (any principal),
  // and each call it carries is checked against its own line above when it runs.
  // agentstate.v1.AdminService: a token's grants must lie within the creator's admin grants
  CreateToken: rule("admin", (r: CreateTokenRequest) =>
    r.grants.length === 0
      ? EVERYWHERE
      : r.grants.map(grantFromPb).map((g) => ({ namespace: g.namespace, ...(g.prefix ? { prefix: g.prefix } : {}) })),
  ),
  ListTokens: rule("admin", () => EVERYWHERE),
  RevokeToken: rule("admin", () => EVERYWHERE),
  // The audit trail of a namespace, or of its keys and streams under key_prefix.
  ListChanges: rule("admin", (r: ListChangesRequest) => [{ namespace: r.namespace, prefix: r.keyPrefix }]),
  // agentstate.v1.AdminService, stored grants: admin over the grant's scope (as for CreateToken)
  GrantRoles: rule("admin", (r: GrantRolesRequest) =>
    r.grant === undefined ? EVERYWHERE : [grantScope(r.grant.namespace, r.grant.prefix)],
  ),
  RevokeGrant: rule("admin", (r: RevokeGrantRequest) => [grantScope(r.namespace, r.prefix)]),
  ListGrants: rule("admin", () => EVERYWHERE),
});
