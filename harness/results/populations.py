"""A population's name in the results: the key its counts are kept under.

`chatload run` names each population's Locust user class so, and the counters are per class
(`users_spawned.Viewer0`); the scenario names the classes by it and the results are read by it.
"""


def population_class_name(kind: str, index: int) -> str:
    """"viewer", 0 → "Viewer0": a population's Locust class name, under which its counts are kept."""
    return f"{kind.title().replace('_', '')}{index}"
