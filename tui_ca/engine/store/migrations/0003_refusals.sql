-- Version 3: refused submissions (policy, bad input, rate limits), so an admin
-- can tell a user why a request never appeared. Only the newest are kept
-- (engine/store/protocol.py REFUSALS_KEPT); seq numbers are never reused.
CREATE TABLE refusals (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    doc json NOT NULL
);
