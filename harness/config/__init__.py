"""Reading TOML tables for validation, shared by scenario, capacity and service keys."""
