"""Participants on an Amazon IVS Real-Time stage, against the embedded emulator (started when no
endpoint is given).

    locust -f locustfiles/ivsrealtime.py --headless -u 50 -r 25 -t 30s
    locust -f locustfiles/ivsrealtime.py --chat-rooms 2                        # web UI, Chat tab

Participants join with SUBSCRIBE tokens and follow the roster; a few publishers take publisher
slots (the emulator allows 12 a stage). Every one pings as the SDK does (first 15 s in), timed to its PONG. Nobody
sends chat on a stage: docs/services/ivsrealtime.md says what is measured.
"""

from harness.services.ivsrealtime.users import Participant, Publisher


class Viewer(Participant):
    weight = 20


class Presenter(Publisher):
    fixed_count = 2
