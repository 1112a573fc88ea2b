"""`locust -f` against a real room asks before billing, as `chatload run` does (issue 24, point 7):
without a terminal to ask in, and without --chat-yes, it refuses before any call goes out."""

from __future__ import annotations

import subprocess
import sys

from .locust_run import ROOT

REAL_ROOM = ["--chat-endpoint", "wss://edge.ivschat.us-east-1.amazonaws.com", "--chat-region", "us-east-1",
             "--chat-room", "arn:aws:ivschat:us-east-1:123456789012:room/AbCdEfGhIjKl"]


def test_locust_against_a_real_room_asks_before_billing_and_refuses_without_an_answer(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "ivschat.py"),
                           "--headless", "-u", "20", "-r", "20", "-t", "30s", "--chat-message-rate", "2",
                           "--chat-report-dir", str(tmp_path), *REAL_ROOM],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode != 0, proc.stderr[-2000:]
    err = proc.stderr
    assert "this Locust run targets the REAL Amazon IVS Chat" in err
    # 20 users × 2/s × 30 s, each message delivered to the 20 in the room: an upper bound, said so.
    assert "about 1,200 messages and cause about 24,000 deliveries" in err and "at most" in err
    assert "refusing to send to a real service without confirmation: pass --chat-yes" in err
    assert "Ramping to" not in err and not list(tmp_path.iterdir()), "nothing started"


def test_the_ivschat_page_real_room_scenario_is_valid_and_its_cost_is_what_chatload_says(tmp_path):
    import re

    from harness.scenario.reader import load_scenario

    page = (ROOT / "docs" / "services" / "ivschat.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", page, re.S) if b.startswith("# my-real-room.toml")]
    path = tmp_path / "my-real-room.toml"
    path.write_text(block, encoding="utf-8")
    scenario = load_scenario(path)
    assert scenario.target.kind == "ivschat" and not scenario.target.emulated
    sent, delivered = scenario.estimated_messages()
    assert f"{sent:,} messages sent and about 600 × 505 = {delivered:,} deliveries" in " ".join(page.split())
