"""`python -m harness.capacity FILE`: the same as `chatload capacity FILE`."""

from .cli import main

raise SystemExit(main())
