-- Custody money flows (seed 001 wallets, withdrawals and payments; seed 000 Secure Send).
-- Each row is the latest state of its entity, written by the journal in the transaction
-- of the postings that moved its money and of the webhook events that announce it.
CREATE TABLE wallet_transfers (
    transfer_id         bigint      PRIMARY KEY,
    kind                text        NOT NULL CHECK (kind IN ('to_sub', 'to_master', 'secure_send')),
    partner_id          text        NOT NULL,
    from_wallet         text        NOT NULL,
    to_wallet           text        NOT NULL,
    currency            text        NOT NULL,
    amount              bigint      NOT NULL CHECK (amount > 0),
    status              text        NOT NULL CHECK (status IN ('pending', 'completed', 'failed')),
    idempotency_key     text,
    fingerprint         text        NOT NULL,
    callback_url        text,
    reason              text        NOT NULL DEFAULT '',
    ledger_transfer_id  bigint,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    UNIQUE (partner_id, idempotency_key)
);
CREATE INDEX wallet_transfers_from ON wallet_transfers (from_wallet, transfer_id);
CREATE INDEX wallet_transfers_to ON wallet_transfers (to_wallet, transfer_id);

CREATE TABLE withdrawals (
    withdrawal_id    bigint      PRIMARY KEY,  -- also the ledger's hold id of its funds
    partner_id       text        NOT NULL,
    wallet_id        text        NOT NULL,
    code             text        NOT NULL,  -- as asked: USDTTRC20
    currency         text        NOT NULL,  -- the ledger's: USDT
    chain            text        NOT NULL,
    address          text        NOT NULL,
    amount           bigint      NOT NULL CHECK (amount > 0),
    fee              bigint      NOT NULL CHECK (fee >= 0),
    state            text        NOT NULL,
    txid             text,
    confirmations    integer     NOT NULL DEFAULT 0,
    reason           text        NOT NULL DEFAULT '',
    custom_id        text,
    idempotency_key  text,
    fingerprint      text        NOT NULL,
    callback_url     text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    UNIQUE (partner_id, idempotency_key)
);
CREATE INDEX withdrawals_partner ON withdrawals (partner_id, created_at);
CREATE INDEX withdrawals_live ON withdrawals (state)
    WHERE state NOT IN ('succeed', 'canceled', 'rejected', 'failed');

CREATE TABLE payments (
    payment_id          bigint      PRIMARY KEY,
    partner_id          text        NOT NULL,
    wallet_id           text        NOT NULL,
    code                text        NOT NULL,
    currency            text        NOT NULL,
    chain               text        NOT NULL,
    pay_address         text        NOT NULL UNIQUE,
    pay_amount          bigint      NOT NULL CHECK (pay_amount > 0),
    received            bigint      NOT NULL DEFAULT 0,
    txids               text[]      NOT NULL DEFAULT '{}',
    price_amount        text        NOT NULL,
    price_currency      text        NOT NULL,
    status              text        NOT NULL,
    order_id            text,
    order_description   text,
    idempotency_key     text,
    fingerprint         text        NOT NULL,
    callback_url        text,
    ledger_transfer_id  bigint,
    expires_at          timestamptz NOT NULL,
    confirm_at          timestamptz,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    UNIQUE (partner_id, idempotency_key)
);
CREATE INDEX payments_partner ON payments (partner_id, created_at);

-- Balance history reads a wallet's postings by either side.
CREATE INDEX postings_debit_wallet ON postings (debit_wallet) WHERE debit_wallet IS NOT NULL;
CREATE INDEX postings_credit_wallet ON postings (credit_wallet) WHERE credit_wallet IS NOT NULL;
