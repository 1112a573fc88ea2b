"""`chatload locust [LOCUST ARGUMENTS…]`: Locust itself, with the --chat-* options known from the start.

Locust answers `--help` before it imports the locustfile (locustio/locust#2917), so the options a
locustfile's imports register never reach `locust --help`. Here they are registered first, then
Locust's own `main` runs with the same arguments: `chatload locust -f locustfiles/ivschat.py --help`
lists every --chat-* option, and any other command line behaves exactly as `locust …` does.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from locust import main as locust_main  # first: Locust patches the standard library with gevent's

    from . import options  # noqa: F401 - registers the --chat-* options with Locust's parser

    sys.argv = ["locust", *argv]
    locust_main.main()
    return 0
