"""Files every layer shares: reading TOML tables for validation, writing files atomically."""
