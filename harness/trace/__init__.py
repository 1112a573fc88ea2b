"""Traces: real traffic as the load. A neutral trace format (`model`, `reader`), importers from what
the services log (`importers`), its shape summarised and scaled (`shape`), and what a replay needs
(`plan`: who sends when; `replayreport`: trace against replayed). Pure: no Locust, no I/O but files.

docs/traces.md describes the format and the commands (`chatload trace …`, `[traffic]` in scenarios).
"""
