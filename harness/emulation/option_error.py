"""The one error an emulator's option parsing raises: apart from `emulation/cli.py` so that each
service's emulator options (below the CLI) can raise it without importing the command line."""


class EmulatorOptionError(ValueError):
    """A bad option or input file: the message names it; the emulator does not start."""
