"""`chatload run` provisions real targets only for services that make their rooms per run
(`ChatService.provisions_real_rooms`); every other service's real target is used as written."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from harness.run.runner import Run
from harness.services.base import RoomSettings, Target


class _Service:
    title = "a service"
    bills_messages = False

    def __init__(self, provisions_real_rooms: bool) -> None:
        self.provisions_real_rooms = provisions_real_rooms
        self.provisioned: list[Target] = []

    def provision(self, target: Target, rooms: RoomSettings, name: str) -> Target:
        self.provisioned.append(target)
        return Target(**{**target.to_dict(), "rooms": ("made-for-the-run",)})


def _run(tmp_path, service: _Service) -> Run:
    target = Target(service="any", kind="real-kind", region="eu-west-1")
    scenario = SimpleNamespace(name="s", file="s.toml", target=target, service=service, rooms=RoomSettings(2), users=3)
    return Run(scenario, argparse.Namespace(report_dir=str(tmp_path), quiet=True, yes=True))


def test_a_real_target_is_provisioned_when_the_service_makes_its_rooms_per_run(tmp_path):
    service = _Service(provisions_real_rooms=True)
    target = _run(tmp_path, service)._prepare_target()
    assert target.rooms == ("made-for-the-run",)
    assert [t.kind for t in service.provisioned] == ["real-kind"]


def test_a_real_target_is_used_as_written_otherwise(tmp_path):
    service = _Service(provisions_real_rooms=False)
    target = _run(tmp_path, service)._prepare_target()
    assert target.rooms == () and service.provisioned == []
