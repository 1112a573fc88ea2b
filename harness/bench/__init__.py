"""Benchmarks: chatload's own speed and the emulator's, each measured against a baseline in the same run.

Each benchmark is a module exposing `NAME`, `SUMMARY` and `run(options, progress) -> BenchResult`,
registered in `cli.BENCHMARKS`; `chatload bench [NAME …]` runs the named ones, or all of them.
"""
