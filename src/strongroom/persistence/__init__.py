"""PostgreSQL: pool, embedded server, migrations, the journal writer and recovery."""
