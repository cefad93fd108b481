-- Partners' own record (their master wallet) and their users (seed 000): each user owns
-- one vault, which is a wallet; the vault's keys are sealed under the user's master
-- password (only its public keys are readable here).
CREATE TABLE partners (
    partner_id        text        PRIMARY KEY,
    master_wallet_id  text        NOT NULL UNIQUE REFERENCES wallets (wallet_id),
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    uid              text        PRIMARY KEY,
    partner_id       text        NOT NULL,
    email            text        NOT NULL UNIQUE,
    external_id      text,
    password_hash    text        NOT NULL,
    rsa_public_key   text        NOT NULL,
    rsa_private_key  text        NOT NULL,  -- sealed under the server key
    totp_secret      text,                  -- sealed under the server key
    totp_enabled     boolean     NOT NULL DEFAULT false,
    otp_last_step    bigint,
    vault_status     text        NOT NULL DEFAULT 'PREPARING',
    main_vault_uuid  text,
    wallet_id        text        NOT NULL UNIQUE REFERENCES wallets (wallet_id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, external_id)
);

CREATE TABLE vaults (
    vault_uuid   text        PRIMARY KEY,
    uid          text        NOT NULL UNIQUE REFERENCES users (uid),
    public_keys  jsonb       NOT NULL,
    sealed       jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
