-- The records of one CA. Every engine rule that a row can express is also a
-- constraint here, so a bug or a racing process cannot break it: the engine
-- checks first (for its one-line messages), the database refuses regardless.
-- Each record keeps the engine's document (json: verbatim, any text) whole; the columns beside it
-- are the fields the constraints and lookups need, written from that document.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- Counters (meta) and the CA's configuration: one row each.
CREATE TABLE meta (
    name text PRIMARY KEY CHECK (name IN ('meta', 'config')),
    doc json NOT NULL CHECK (json_typeof(doc) = 'object')
);

CREATE TABLE requests (
    id bigint PRIMARY KEY CHECK (id > 0),
    requester_key text NOT NULL CHECK (requester_key <> ''),
    status text NOT NULL CHECK (status IN ('queued', 'approved', 'rejected', 'expired')),
    spki text NOT NULL,
    csr_sha text NOT NULL,
    doc json NOT NULL,
    -- the target of certificates' (id, 'approved') reference below
    UNIQUE (id, status)
);
-- At most one queued request per requester.
CREATE UNIQUE INDEX one_queued_request_per_requester ON requests (requester_key) WHERE status = 'queued';
CREATE INDEX requests_by_status ON requests (status, id);

CREATE TABLE csr_pems (
    id bigint PRIMARY KEY REFERENCES requests (id) DEFERRABLE INITIALLY DEFERRED,
    pem text NOT NULL CHECK (pem LIKE '-----BEGIN CERTIFICATE REQUEST-----%')
);

CREATE TABLE certificates (
    id bigint PRIMARY KEY,
    request_status text NOT NULL DEFAULT 'approved' CHECK (request_status = 'approved'),
    requester_key text NOT NULL,
    serial text NOT NULL UNIQUE CHECK (serial ~ '^[1-9a-f][0-9a-f]*$'),
    spki text NOT NULL,
    issued_at timestamptz NOT NULL,
    not_after timestamptz NOT NULL CHECK (not_after > issued_at),
    revoked_at timestamptz,
    doc json NOT NULL,
    -- A certificate only for an approved request, one per request (the primary
    -- key): four admins approving one request cannot make two certificates, and
    -- an approved request cannot go back to the queue under its certificate.
    FOREIGN KEY (id, request_status) REFERENCES requests (id, status) DEFERRABLE INITIALLY DEFERRED,
    -- One active certificate per requester: no two unrevoked certificates of one
    -- requester overlap in time. Deferred: a renewal inserts the new certificate
    -- and revokes the one it supersedes in the same transaction.
    CONSTRAINT one_active_certificate_per_requester
        EXCLUDE USING gist (requester_key WITH =, tstzrange(issued_at, not_after) WITH &&)
        WHERE (revoked_at IS NULL) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE cert_pems (
    id bigint PRIMARY KEY REFERENCES certificates (id) DEFERRABLE INITIALLY DEFERRED,
    pem text NOT NULL CHECK (pem LIKE '-----BEGIN CERTIFICATE-----%')
);

-- The indexes the engine keeps by name (rows point at records).
CREATE TABLE requesters (
    requester_key text PRIMARY KEY,
    name text NOT NULL,
    queued bigint REFERENCES requests (id) DEFERRABLE INITIALLY DEFERRED,
    active bigint REFERENCES certificates (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE serials (
    serial text PRIMARY KEY CHECK (serial ~ '^[1-9a-f][0-9a-f]*$'),
    cert_id bigint NOT NULL UNIQUE REFERENCES certificates (id) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE csrs (
    csr_sha text PRIMARY KEY,
    request_id bigint NOT NULL REFERENCES requests (id) DEFERRABLE INITIALLY DEFERRED
);

-- Keys revoked for keyCompromise: each key once, and never certified again.
CREATE TABLE compromised_keys (
    spki text PRIMARY KEY,
    cert_id bigint NOT NULL REFERENCES certificates (id) DEFERRABLE INITIALLY DEFERRED
);

-- Revocations: one per certificate, with its CRL entry encoded once.
CREATE TABLE revoked (
    id bigint PRIMARY KEY REFERENCES certificates (id) DEFERRABLE INITIALLY DEFERRED,
    serial text NOT NULL UNIQUE,
    doc json NOT NULL,
    entry_der bytea NOT NULL
);

-- The audit log, chained: record n names record n-1's hash, and the database
-- holds it to that (a foreign key on (seq - 1, prev)), so no record can be
-- left out or put in between. Records are never changed or removed (trigger).
CREATE TABLE audit (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    hash text NOT NULL,
    prev text NOT NULL,
    prev_seq bigint GENERATED ALWAYS AS (NULLIF(seq - 1, 0)) STORED,
    doc json NOT NULL,
    UNIQUE (seq, hash),
    CHECK (seq > 1 OR prev = ''),
    FOREIGN KEY (prev_seq, prev) REFERENCES audit (seq, hash)
);

-- Published artefacts (the CRL as DER and PEM) and public CA files, shared by every node.
CREATE TABLE blobs (
    name text PRIMARY KEY,
    data bytea NOT NULL
);

-- One row per committed transaction, so that a commit whose answer was lost
-- with the connection can be told apart from one that never landed.
CREATE TABLE commits (
    token uuid PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = TG_ARGV[0],
        MESSAGE = TG_ARGV[1];
END $$;

-- Certificate IDs are burnt: no request is ever removed, so no ID comes back.
CREATE TRIGGER requests_are_never_removed BEFORE DELETE ON requests
    FOR EACH ROW EXECUTE FUNCTION refuse_change('ids_are_burnt', 'a request is never removed: its Certificate ID stays burnt');
CREATE TRIGGER certificates_are_never_removed BEFORE DELETE ON certificates
    FOR EACH ROW EXECUTE FUNCTION refuse_change('certificates_stay', 'an issued certificate is never removed');
CREATE TRIGGER audit_is_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION refuse_change('audit_append_only', 'audit records are never changed or removed');
CREATE TRIGGER compromised_keys_stay BEFORE DELETE ON compromised_keys
    FOR EACH ROW EXECUTE FUNCTION refuse_change('compromised_keys_stay', 'a key revoked for keyCompromise stays blocked');
CREATE TRIGGER serials_stay BEFORE UPDATE OR DELETE ON serials
    FOR EACH ROW EXECUTE FUNCTION refuse_change('serials_stay', 'a serial number is never given to another certificate');

-- A new ID is above every ID ever given (the engine counts up under the writers' lock).
-- An upsert of an existing request fires this too, and is an update.
CREATE FUNCTION check_new_request_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM requests WHERE id = NEW.id)
            AND NEW.id <= (SELECT coalesce(max(id), 0) FROM requests) THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = 'ids_are_burnt',
            MESSAGE = format('Certificate ID %s was given before; IDs are never reused', NEW.id);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER new_request_ids_count_up BEFORE INSERT ON requests
    FOR EACH ROW EXECUTE FUNCTION check_new_request_id();

-- keyCompromise: a key in compromised_keys is refused at intake and at issuance.
CREATE FUNCTION check_key_not_compromised() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    holder bigint;
    existing text;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.spki = OLD.spki THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        -- An upsert fires this before it finds its row: a record already there
        -- with the same key is being updated (revoked, decided), not certified anew.
        EXECUTE format('SELECT spki FROM %I WHERE id = $1', TG_TABLE_NAME) INTO existing USING NEW.id;
        IF existing = NEW.spki THEN
            RETURN NEW;
        END IF;
    END IF;
    SELECT cert_id INTO holder FROM compromised_keys WHERE spki = NEW.spki;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', CONSTRAINT = 'key_compromised',
            MESSAGE = format('this public key was revoked for keyCompromise (certificate %s)', holder);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER requests_refuse_compromised_keys BEFORE INSERT OR UPDATE ON requests
    FOR EACH ROW EXECUTE FUNCTION check_key_not_compromised();
CREATE TRIGGER certificates_refuse_compromised_keys BEFORE INSERT OR UPDATE ON certificates
    FOR EACH ROW EXECUTE FUNCTION check_key_not_compromised();
