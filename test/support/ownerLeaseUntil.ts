import { pgQuery } from "./pgQuery";

/**
 * The cache owner's lease_until in the database at `databaseUrl`, as text
 * (undefined: no owner). Every lease read by a replica of the owning cache
 * pushes it to that read's time plus the replica's lease, if later: a test
 * sees a long-lease replica's reads as jumps of it.
 */
export async function ownerLeaseUntil(databaseUrl: string): Promise<string | undefined> {
  const rows = await pgQuery<{ t: string }>(
    databaseUrl,
    `SELECT g.lease_until::text AS t FROM cache_registrations g
     JOIN agentstate_state s ON s.id = 1 AND g.identity = s.cache_owner`,
  );
  return rows[0]?.t;
}
