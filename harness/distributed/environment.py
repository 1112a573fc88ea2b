"""The environment variables a master and its workers agree on.

Here rather than in `run/worker.py` because the Locust plugin's admission reads them too, and the
plugin sits below `run/` (the runner must not import Locust: its import patches the standard library
with gevent's)."""

SECRET_ENV = "CHATLOAD_WORKER_SECRET"  # the same on the master and every worker
MASTER_ENV = "CHATLOAD_MASTER"  # HOST:PORT, for the scenario locustfile: the scenario comes from there
