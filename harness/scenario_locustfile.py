"""The locustfile `chatload run` gives Locust: user classes built from the scenario's populations.

The scenario path comes in the environment (CHATLOAD_SCENARIO), so `--processes` workers, which
import this file themselves, build the very same classes.
"""

import os

from harness.scenario import load_scenario
from harness.users import ChatterUser, ModeratorUser, ViewerUser

_BASES = {"viewer": ViewerUser, "chatter": ChatterUser, "moderator": ModeratorUser}
_scenario = load_scenario(os.environ["CHATLOAD_SCENARIO"])
_size = (_scenario.messages.size_min, _scenario.messages.size_max)

for _index, _population in enumerate(_scenario.populations):
    _name = f"{_population.kind.title()}{_index}"
    globals()[_name] = type(_name, (_BASES[_population.kind],), {
        "__module__": __name__,
        "fixed_count": _population.users,
        "reconnect": _population.reconnect,
        "session_minutes": _population.session_minutes,
        "message_rate": _population.message_rate or _scenario.messages.rate_per_chatter,
        "message_size": _size,
    })
