-- Partners (tenants): an OAuth application belongs to one; a partner may have several.
-- Wallets are owned by the partner, so every application of a partner sees the same ones.
-- Applications made before this migration are each a partner of their own, whose id is
-- their client id: the owners already written in `wallets` stay right.
ALTER TABLE oauth_applications ADD COLUMN partner_id text;
UPDATE oauth_applications SET partner_id = client_id;
ALTER TABLE oauth_applications ALTER COLUMN partner_id SET NOT NULL;
CREATE INDEX oauth_applications_partner ON oauth_applications (partner_id);
