-- 0003_events: append-only event streams.
-- An event's position is a store revision: every append takes one revision
-- per event under the revision row lock, right before commit, so positions
-- follow commit order with no gaps, across all streams and key writes.
CREATE TABLE streams (
  namespace text NOT NULL,
  stream text NOT NULL,
  version bigint NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (namespace, stream)
);

CREATE TABLE events (
  position bigint PRIMARY KEY,
  namespace text NOT NULL,
  stream text NOT NULL,
  stream_version bigint NOT NULL,
  event_id uuid NOT NULL,
  type text NOT NULL,
  data bytea NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- sha256 of (stream, type, data, metadata): a re-sent id must carry the same event.
  fingerprint bytea NOT NULL,
  created_at timestamptz NOT NULL,
  UNIQUE (namespace, stream, stream_version),
  -- Event ids are unique per namespace: this constraint, not a cache of
  -- recent ids, is what makes a re-sent batch a no-op.
  UNIQUE (namespace, event_id)
);
CREATE INDEX events_ns_position ON events (namespace, position);
CREATE INDEX events_ns_stream_position ON events (namespace, stream, position);
CREATE INDEX events_created_at ON events (created_at);
