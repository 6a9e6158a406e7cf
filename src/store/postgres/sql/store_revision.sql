-- store_revision: the current store revision (no lock taken).
-- No parameters.
SELECT revision AS store_revision FROM agentstate_state WHERE id = 1
