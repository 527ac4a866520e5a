"""tracelake.store: ClickHouse stores (embedded chdb and server), schema and migrations."""
