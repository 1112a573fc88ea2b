"""Benchmarks: chatload's own speed and the emulator's, each measured against a baseline in the same run.

Each benchmark is a module exposing `NAME`, `SUMMARY` and `run(options, progress) -> BenchResult`,
registered in `cli.BENCHMARKS`; `chatload bench [NAME …]` runs the named ones, or all of them.
Every benchmark today runs on an IVS Chat emulator room (`ivschat/`, which says why); this level
holds what is service-neutral: options and reports (`common`, `tables`), child processes
(`children`, `child_protocol`, `window_sampler`, `connect_phase`), frame-counting connections on
chatload's own transports (`counting_connection`, `counting_receivers`) and the bare broadcast
server (`bare_server`).
"""
