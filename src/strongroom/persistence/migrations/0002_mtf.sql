-- MTF credentials: one row per client id. The secret itself is never stored: it is
-- derived from `salt` with a key kept outside the database (see wire/credentials.py).
CREATE TABLE mtf_credentials (
    client_id    bigint      PRIMARY KEY CHECK (client_id > 0 AND client_id < 4294967296),
    wallet_id    text        NOT NULL REFERENCES wallets (wallet_id),
    salt         bytea       NOT NULL,
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX mtf_credentials_wallet ON mtf_credentials (wallet_id);

-- Every login nonce ever accepted, per client id: a nonce is never accepted twice.
CREATE TABLE mtf_login_nonces (
    client_id    bigint         NOT NULL,
    nonce        numeric(20, 0) NOT NULL,
    used_at      timestamptz    NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, nonce)
);
