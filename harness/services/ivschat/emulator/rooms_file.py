"""`--rooms-file`: rooms the emulator creates at start, so scripts can rely on fixed room ARNs.

TOML or JSON, a list `rooms` whose entries are CreateRoom members plus an optional `id`
(12 characters `[A-Za-z0-9]`) that pins the room's ARN:

    [[rooms]]
    id = "lobby0000001"
    name = "lobby"
    maximumMessageRatePerSecond = 100

Entries are checked with the control plane's own input table; unlike the API, unknown keys are
errors here (a typo in a file should not silently become a default).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from ....emulation.aws_json import check
from .controlplane import INPUTS, ControlPlane
from .state import Room

ROOM_ID = re.compile(r"[A-Za-z0-9]{12}")


class RoomsFileError(ValueError):
    pass


def _parse(path: Path) -> object:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RoomsFileError(f"{path}: not valid JSON: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoomsFileError(f"{path}: not valid TOML: {exc}") from None


def load_rooms_file(path: str | Path, emulator) -> list[Room]:
    """Validate every entry first, then create the rooms: a bad file creates nothing."""
    path = Path(path)
    try:
        data = _parse(path)
    except OSError as exc:
        raise RoomsFileError(f"{path}: cannot read: {exc.strerror}") from None
    if not isinstance(data, dict) or set(data) != {"rooms"} or not isinstance(data["rooms"], list):
        raise RoomsFileError(f"{path}: expected exactly one key, `rooms`, holding a list of rooms")
    spec = INPUTS["CreateRoom"]
    allowed = set(spec.members) | {"id"}
    planned: list[tuple[str | None, dict]] = []
    seen_ids: set[str] = set(emulator.state.rooms)
    for index, entry in enumerate(data["rooms"]):
        where = f"{path}: rooms[{index}]"
        if not isinstance(entry, dict):
            raise RoomsFileError(f"{where}: must be a table of CreateRoom members")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise RoomsFileError(f"{where}.{unknown[0]}: unknown key; allowed: {', '.join(sorted(allowed))}")
        params = {k: v for k, v in entry.items() if k != "id"}
        problems: list[tuple[str, str]] = []
        params = check(spec, params, "", problems)
        if problems:
            key, problem = problems[0]
            raise RoomsFileError(f"{where}.{key}: {problem}")
        room_id = entry.get("id")
        if room_id is not None:
            if not isinstance(room_id, str) or not ROOM_ID.fullmatch(room_id):
                raise RoomsFileError(f"{where}.id: must be 12 characters [A-Za-z0-9]")
            if room_id in seen_ids:
                raise RoomsFileError(f"{where}.id: room {room_id} is defined twice")
            seen_ids.add(room_id)
        planned.append((room_id, params))
    return [
        emulator.state.create_room(room_id=room_id, tags=params.get("tags"), **ControlPlane._settings(params))
        for room_id, params in planned
    ]
