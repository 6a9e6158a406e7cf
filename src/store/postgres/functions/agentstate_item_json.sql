-- agentstate_item_json(r kv) -> jsonb
--
-- Promises: the JSON form of a key's row that idempotency records keep as
-- the first reply (ItemJson in src/store/postgres/rows.ts reads it back):
-- the key as text, the value in base64, times as UTC ISO-8601 with
-- microseconds. Pure: the same row always gives the same JSON.
-- Parameters: r, a row of kv.
-- Result: {k, v, ct, ver, cr, mr, ctm, utm, etm} (etm null without expiry).
CREATE OR REPLACE FUNCTION agentstate_item_json(r kv) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT jsonb_build_object(
    'k', convert_from(r.key, 'UTF8'),
    'v', translate(encode(r.value, 'base64'), E'\n', ''),
    'ct', r.content_type,
    'ver', r.version,
    'cr', r.create_revision,
    'mr', r.mod_revision,
    'ctm', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'utm', to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'etm', CASE WHEN r.expires_at IS NULL THEN NULL
                ELSE to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END)
$fn$;
