-- Partner webhooks (seed 001 "Configure Webhooks"): each partner's callback URL and its
-- signing secret, sealed under the server key (the server must read it back to sign), and
-- a durable outbox: an event is written in the transaction of its cause (or right after
-- the cause's commit) and is delivered at least once, every attempt recorded.
CREATE TABLE partner_webhooks (
    partner_id     text        PRIMARY KEY,
    callback_url   text        NOT NULL,
    secret_sealed  text        NOT NULL,  -- sealed under the server key
    secret_masked  text        NOT NULL,  -- what GET /user/me/ shows of it
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_events (
    event_id         text        PRIMARY KEY,  -- X-Webhook-Id, the same on every attempt
    partner_id       text        NOT NULL,
    event_type       text        NOT NULL,
    payload          jsonb       NOT NULL,
    -- NULL: the partner's webhook URL as it is at each attempt (a fixed URL takes effect
    -- on pending events); else a per-request callback_url.
    target_url       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    -- When the worker may try next; a claim moves it ahead by a lease, so an attempt cut
    -- short by a crash is made again once the lease is over.
    next_attempt_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_events_partner ON webhook_events (partner_id, created_at);

CREATE TABLE webhook_deliveries (
    id               bigserial   PRIMARY KEY,
    event_id         text        NOT NULL REFERENCES webhook_events (event_id),
    partner_id       text        NOT NULL,  -- the event's, so a partner's list is indexed
    attempt          integer     NOT NULL,
    url              text        NOT NULL,
    attempted_at     timestamptz NOT NULL,
    status_code      integer,               -- NULL when no answer came (see error)
    error            text,
    next_attempt_at  timestamptz,           -- NULL once done
    done             boolean     NOT NULL,  -- delivered (2xx) or given up
    UNIQUE (event_id, attempt)
);
CREATE INDEX webhook_deliveries_partner ON webhook_deliveries (partner_id, id);
