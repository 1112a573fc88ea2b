"""Data messages in Amazon Chime SDK meetings, against the embedded emulator (started when no
endpoint is given).

    locust -f locustfiles/chime.py --headless -u 50 -r 25 -t 30s
    locust -f locustfiles/chime.py --chat-message-rate 5 --chat-rooms 2      # web UI, Chat tab

Attendees listen on the topic, senders send on an open-loop schedule (--chat-message-rate each).
Real meetings are made per run by `chatload run` (see docs/services/chime.md).
"""

from harness.services.chime.users import Attendee, DataSender


class Listener(Attendee):
    weight = 20


class Sender(DataSender):
    weight = 1
