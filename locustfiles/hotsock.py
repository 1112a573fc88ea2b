"""Channel chat over Hotsock, against the embedded emulator (started when no endpoint is given).

    locust -f locustfiles/hotsock.py --headless -u 50 -r 25 -t 30s
    locust -f locustfiles/hotsock.py --chat-message-rate 2 --chat-rooms 2      # web UI, Chat tab

Subscribers listen on their channel, chatters publish client messages on an open-loop schedule
(--chat-message-rate each); tokens are minted per user from its capabilities. A real installation
is described in docs/services/hotsock.md; `locust --help` lists every --chat-* option.
"""

from harness.services.hotsock.users import ChannelChatter, Subscriber


class Listener(Subscriber):
    weight = 20


class Chatter(ChannelChatter):
    weight = 2
