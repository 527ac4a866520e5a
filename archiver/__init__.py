"""tracelake.archiver: retention policies and the Parquet archive (not built yet)."""
