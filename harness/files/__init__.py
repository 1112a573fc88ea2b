"""Files every layer shares: reading TOML tables for validation (toml_tables), writing files
atomically (atomic)."""
