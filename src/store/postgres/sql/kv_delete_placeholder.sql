-- kv_delete_placeholder: removes this transaction's own claim row.
-- $1 namespace text, $2 key bytea
DELETE FROM kv WHERE namespace = $1 AND key = $2 AND version = 0
