-- events_latest_positions: the position of each namespace's latest event (0: none), for the
-- change feed's poll (one statement per replica per interval for every namespace it reads).
-- $1 namespaces text[]
-- Each namespace is one backward step of the events primary key (namespace, position).
SELECT ns AS namespace,
       coalesce((SELECT e.position FROM events e WHERE e.namespace = ns ORDER BY e.position DESC LIMIT 1), 0) AS position
FROM unnest($1::text[]) AS ns
