"""chatload's Locust integration, split by concern:

    options   the --chat-* command-line options (the harness's and each service's own)
    state     what the plugin keeps per Locust environment, and each process's runtime
    target    the owning process starts the emulator and provisions rooms; every process builds
              its runtime from the resolved target that travels with the options
    drain     the end of a test: drain, merge across workers, write results
    replay    a trace as the load (--chat-trace): who sends when, who joins and leaves
    progress  the progress file and the command file `chatload run` uses
    webui     the web UI's Chat tab
    live_metrics  a Prometheus endpoint and OTLP pushes while the test runs
    live_metrics  a Prometheus endpoint and OTLP pushes while the test runs
    admission workers on other machines: the shared secret, the scenario sent from the master
    users     ChatClient and the neutral user classes services build on

Importing any user class imports this package, which registers the listeners with Locust.
"""

from . import admission, drain, live_metrics, options, progress, replay, target, webui  # noqa: F401 - they register listeners
