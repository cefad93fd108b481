"""Identity: who is calling — partners' API keys, request signatures, users' logins and vaults."""
