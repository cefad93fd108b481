-- The trading spine: wallets, the double-entry ledger, orders, trades, deposits, auth.
-- Money columns are bigint minor units; prices bigint ticks; quantities bigint lots.

CREATE TABLE oauth_applications (
    id           bigserial PRIMARY KEY,
    name         text        NOT NULL,
    client_id    text        NOT NULL UNIQUE,
    secret_hash  text        NOT NULL,
    scopes       text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE access_tokens (
    token_hash   bytea       PRIMARY KEY,
    client_id    text        NOT NULL REFERENCES oauth_applications (client_id) ON DELETE CASCADE,
    scopes       text        NOT NULL,
    expires_at   timestamptz NOT NULL,
    revoked      boolean     NOT NULL DEFAULT false
);

CREATE TABLE wallets (
    wallet_id    text        PRIMARY KEY,
    owner        text        NOT NULL,
    name         text        NOT NULL,
    external_id  text        UNIQUE,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

CREATE TABLE transfers (
    transfer_id  bigint      PRIMARY KEY,
    kind         text        NOT NULL,
    key          text        UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE postings (
    transfer_id   bigint   NOT NULL REFERENCES transfers (transfer_id),
    debit_code    smallint NOT NULL,
    debit_wallet  text,
    credit_code   smallint NOT NULL,
    credit_wallet text,
    currency      text     NOT NULL,
    amount        bigint   NOT NULL CHECK (amount > 0),
    hold_id       bigint
);
CREATE INDEX postings_transfer ON postings (transfer_id);
CREATE INDEX postings_hold ON postings (hold_id) WHERE hold_id IS NOT NULL;

-- Derived from postings in the same transaction; recovery checks they agree.
CREATE TABLE balances (
    code       smallint NOT NULL,
    wallet_id  text     NOT NULL DEFAULT '',
    currency   text     NOT NULL,
    amount     bigint   NOT NULL,
    PRIMARY KEY (code, wallet_id, currency)
);

CREATE TABLE orders (
    order_id         bigint      PRIMARY KEY,
    wallet_id        text        NOT NULL,
    market           text        NOT NULL,
    side             smallint    NOT NULL,
    kind             smallint    NOT NULL,
    price            bigint      NOT NULL,
    quantity         bigint      NOT NULL,
    stop_price       bigint      NOT NULL,
    display_quantity bigint      NOT NULL,
    time_in_force    smallint    NOT NULL,
    post_only        boolean     NOT NULL,
    external_id      text,
    fingerprint      text        NOT NULL,
    status           text        NOT NULL,
    filled           bigint      NOT NULL,
    funds            bigint      NOT NULL,
    remaining        bigint      NOT NULL,
    visible          bigint      NOT NULL,
    priority         bigint      NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    reason           text        NOT NULL DEFAULT ''
);
CREATE INDEX orders_live ON orders (market, priority) WHERE status IN ('open', 'pending');
CREATE INDEX orders_external ON orders (wallet_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE trades (
    market          text        NOT NULL,
    trade_id        bigint      NOT NULL,
    price           bigint      NOT NULL,
    quantity        bigint      NOT NULL,
    taker_side      smallint    NOT NULL,
    maker_order_id  bigint      NOT NULL,
    taker_order_id  bigint      NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (market, trade_id)
);

CREATE TABLE deposits (
    deposit_id    bigint      PRIMARY KEY,
    tid           text        NOT NULL UNIQUE,
    wallet_id     text        NOT NULL,
    currency      text        NOT NULL,
    amount        bigint      NOT NULL,
    state         text        NOT NULL,
    fingerprint   text        NOT NULL,
    transfer_id   bigint,
    created_at    timestamptz NOT NULL,
    completed_at  timestamptz
);

CREATE TABLE markets (
    market        text   PRIMARY KEY,
    sequence      bigint NOT NULL
);
