-- 0018: agentstate_kv_write gains p_marked_by (the cache identity a write was
-- marked under; functions/agentstate_kv_write.sql): a marked write counts as
-- marked in the epoch owner's cache only if it names the owner (issue 19).
-- A parameter cannot be added by CREATE OR REPLACE: the signature 0012_audit
-- introduced (scalar p_ns, principal, request id; no p_marked_by) goes here,
-- and the function file creates the new one right after. Left beside it, the
-- two would both match a call that names the parameters they share.
DROP FUNCTION IF EXISTS agentstate_kv_write(text, bytea[], smallint[], bytea[], text[], bigint[], smallint[],
  bigint[], text[], bigint[], text[], bytea[], bigint[], bigint[], boolean[], text[], text[], boolean);
-- The previous release's signature (p_ns text[], no principal), which
-- 0012_audit keeps for that release's replicas during a rolling upgrade, is
-- not dropped: its body, release 3's, would count their writes as marked in
-- the owner's cache whether or not they were. functions/
-- agentstate_kv_write.release3.sql replaces it (CREATE OR REPLACE, same
-- signature) with a wrapper of the new function that passes p_marked_by
-- NULL: such writes take the path of an unmarked write and move an owned
-- cache epoch. On a new database that file creates it.
