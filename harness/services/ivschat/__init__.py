"""Amazon IVS Chat: codec and client protocol, the service adapter, Locust users, the emulator."""
