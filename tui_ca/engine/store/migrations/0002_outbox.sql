-- Version 2: the notification outbox (engine/notify/outbox.py), written in the
-- same transaction as the change it announces and emptied as it is delivered.
CREATE TABLE outbox (
    id bigint PRIMARY KEY CHECK (id >= 0),
    doc json NOT NULL
);
