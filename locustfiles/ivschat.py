"""Default chat load against Amazon IVS Chat (or the embedded emulator when no endpoint is given).

    locust -f locustfiles/ivschat.py --headless -u 100 -r 50 -t 30s
    locust -f locustfiles/ivschat.py --chat-message-rate 2 --chat-rooms 4        # web UI, Chat tab
    locust -f locustfiles/ivschat.py --chat-endpoint wss://edge.ivschat.us-east-1.amazonaws.com \\
        --chat-region us-east-1 --chat-room-arn arn:aws:ivschat:us-east-1:…:room/…

Viewers listen, chatters talk on an open-loop schedule (--chat-message-rate per chatter), a
moderator deletes a recent message now and then. `chatload locust -f locustfiles/ivschat.py --help`
lists every --chat-* option (plain `locust --help` cannot: Locust answers it before importing this file).
"""

from harness.services.ivschat.users import ChatterUser, ModeratorUser, ViewerUser


class Viewer(ViewerUser):
    weight = 20


class Chatter(ChatterUser):
    weight = 2


class Moderator(ModeratorUser):
    fixed_count = 1
