"""chatload's Locust integration, split by concern:

    options   the --chat-* command-line options (the harness's and each service's own)
    target    the resolved target that travels with the options, and where tokens come from
    state     what the plugin keeps per Locust environment, and each process's runtime (built from
              that target)
    users     ChatClient and the neutral user classes services build on
    target_setup  the owning process starts the emulator and provisions rooms (a plain Locust run)
    progress  the progress file and the command file `chatload run` uses
    admission workers on other machines: the shared secret, the scenario sent from the master
    replay    a trace as the load (--chat-trace): who sends when, who joins and leaves
    drain     the end of a test: drain, merge across workers, write results
    webui     the web UI's Chat tab
    live_metrics  a Prometheus endpoint and OTLP pushes while the test runs

Each imports only modules listed before it: the listeners sit on top of the users (a trace replay's
driver reaches the users through `state.replay_for`).
Importing any user class imports this package, which registers the listeners with Locust.
"""

from . import admission, drain, live_metrics, options, progress, replay, target_setup, webui  # noqa: F401 - they register listeners
