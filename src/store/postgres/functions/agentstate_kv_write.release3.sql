-- agentstate_kv_write(p_ns text[], p_key, ..., p_bump, p_wait) -> SETOF agentstate_kv_write_result
-- Requires: agentstate_kv_write
--
-- Promises: the previous release's signature of agentstate_kv_write (release
-- 3's, also releases 1 and 2's: p_ns text[], a namespace per write; no
-- principal, request id or p_marked_by), kept for that release's replicas
-- while a rolling upgrade runs, with this release's semantics. It is a thin
-- wrapper: it runs the writes of each namespace of the batch, in namespace
-- order, through this release's agentstate_kv_write (agentstate_kv_write.sql,
-- which names and explains every parameter and status) with p_principal and
-- p_request_id NULL (the change is not attributed: migrations/0012) and
-- p_marked_by NULL.
--
-- Why a wrapper rather than release 3's body (which migrations/0012 left in
-- place): a replica of release 3 marks a write in its own cache whether or
-- not that cache owns the epoch, and does not say which cache it marked in.
-- Counted as marked in the owner's cache, such a write would not move the
-- epoch and the owner's replicas would go on serving the replaced value
-- (test/integration/cache.previousRelease.test.ts). Through this wrapper it
-- takes the path of an unmarked write: it moves an owned epoch, and the
-- reply's bump_epoch / bump_prev_age_ms make its replica wait it out.
--
-- Old batches hold one namespace (the server sorts a batch by namespace and
-- key); a batch of several runs as one call per namespace in the same
-- statement (one transaction): keys and revision row of the first namespace,
-- then of the next, always in namespace order, so two such batches claim
-- rows in one order. Each write's deadline still counts from this
-- statement's start.
--
-- Parameters: as release 3's (one element per write in every array, p_wait
-- for the batch). Result: one agentstate_kv_write_result row per write, in
-- the order given, idx its 1-based position in this batch; wait_ms, which
-- release 3 does not read, as agentstate_kv_write sets it.
--
-- A later release's migration drops this signature, and this file goes:
--   DROP FUNCTION agentstate_kv_write(text[], bytea[], smallint[], bytea[], text[], bigint[], smallint[],
--     bigint[], text[], bigint[], text[], bytea[], bigint[], bigint[], boolean[], boolean);
CREATE OR REPLACE FUNCTION agentstate_kv_write(
  p_ns text[],             -- namespace, per write
  p_key bytea[],
  p_op smallint[],
  p_value bytea[],
  p_ct text[],
  p_ttl_ms bigint[],
  p_exp_kind smallint[],
  p_exp_version bigint[],
  p_fence_name text[],
  p_fence_token bigint[],
  p_idem text[],
  p_fp bytea[],
  p_deadline_ms bigint[],
  p_marked_epoch bigint[],
  p_bump boolean[],
  p_wait boolean
) RETURNS SETOF agentstate_kv_write_result
LANGUAGE plpgsql AS $fn$
DECLARE
  n int := coalesce(cardinality(p_key), 0);
  res agentstate_kv_write_result[] := array_fill(NULL::agentstate_kv_write_result, ARRAY[n]);
  r agentstate_kv_write_result;
  ns text;
  -- The positions in this batch of one namespace's writes, in order.
  ix int[];
  i int;
BEGIN
  FOR ns IN SELECT DISTINCT p_ns[x] FROM generate_series(1, n) AS x ORDER BY 1 LOOP
    ix := ARRAY(SELECT x FROM generate_series(1, n) AS x WHERE p_ns[x] IS NOT DISTINCT FROM ns ORDER BY x);
    FOR r IN
      SELECT * FROM agentstate_kv_write(
        p_ns => ns,
        p_key => ARRAY(SELECT p_key[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_op => ARRAY(SELECT p_op[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_value => ARRAY(SELECT p_value[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_ct => ARRAY(SELECT p_ct[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_ttl_ms => ARRAY(SELECT p_ttl_ms[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_exp_kind => ARRAY(SELECT p_exp_kind[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_exp_version => ARRAY(SELECT p_exp_version[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_fence_name => ARRAY(SELECT p_fence_name[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_fence_token => ARRAY(SELECT p_fence_token[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_idem => ARRAY(SELECT p_idem[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_fp => ARRAY(SELECT p_fp[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_deadline_ms => ARRAY(SELECT p_deadline_ms[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_marked_epoch => ARRAY(SELECT p_marked_epoch[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_bump => ARRAY(SELECT p_bump[x] FROM unnest(ix) WITH ORDINALITY AS u(x, o) ORDER BY o),
        p_principal => NULL::text[],
        p_request_id => NULL::text[],
        p_wait => p_wait,
        p_marked_by => NULL::text[])
    LOOP
      -- idx is the write's position in the namespace's call: back to this batch's.
      r.idx := ix[r.idx];
      res[r.idx] := r;
    END LOOP;
  END LOOP;
  FOR i IN 1..n LOOP
    RETURN NEXT res[i];
  END LOOP;
END
$fn$;
