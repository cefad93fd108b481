-- API keys of partners (seed 003): the secret is derived from a key kept outside the
-- database and this salt, so the database alone yields no usable secret.
CREATE TABLE api_keys (
    api_key             text        PRIMARY KEY,
    partner_id          text        NOT NULL,
    created_by          text        NOT NULL,
    scopes              text        NOT NULL,
    signature_required  boolean     NOT NULL,
    salt                bytea       NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    revoked_at          timestamptz
);
CREATE INDEX api_keys_partner ON api_keys (partner_id) WHERE revoked_at IS NULL;
