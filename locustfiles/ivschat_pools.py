"""IVS Chat with listener pools: each ViewerPool user holds 500 listening connections from one greenlet.

    locust -f locustfiles/ivschat_pools.py --headless -u 4 -r 4 -t 30s     # 2 chatters, 2 × 500 viewers

Choose pools when listeners are the bulk of the load and only receive: a pool costs one Locust user
(one greenlet, ~7 KiB) per `connections_per_user` connections instead of per connection. Every
connection is still its own session with its own token, user id and ledger receiver, so loss and
latency are accounted per connection exactly as with `locustfiles/ivschat.py`. `-u` counts Locust
users; the Chat tab, the progress line and the report count connections (docs/listener-pools.md).
"""

from harness.locust.pool import ListenerPool
from harness.services.ivschat.users import ChatterUser, ViewerUser


class ViewerPool(ListenerPool, ViewerUser):
    connections_per_user = 500


class Chatter(ChatterUser):
    fixed_count = 2
