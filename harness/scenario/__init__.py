"""Scenario files: reading and validating them, and the page of docs generated from their keys."""
