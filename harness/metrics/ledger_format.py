"""The delivery ledger's export: what one process's `DeliveryLedger` hands to the run's owner.

The recorder (`ledger_record`) writes it on the loop thread at the end of a run; the judge
(`ledger_judge`) and the propagation merge (`propagation.merge`, which reads only the connection
intervals) read it in whichever process owns the run, after it has travelled as JSON between
processes. This page is the one description of it; both sides import `FORMAT` from here.

Times are integer nanoseconds on the shared wall clock. *Accept time* is the server's own time of
accepting a message (each service's protocol reads it from that service's frames), or the client's
send time for a presumed-accepted message. A message is identified by (sender, seq).

A "connection" here (the key `connections`, and `totals.connections` in results) is one membership
of a receiver in a room: one WebSocket joined to one room, from when it was ready to when it ended.
Its `id` is the session's `membership_id`, new for every join. The key keeps its name because
results files and users' tools read it.

    {"format": FORMAT, "end_ns": int,
     "sent": int,                                    # sends recorded here
     "rejected": {"<code>": n},                      # by the service's own code
     "rejected_categories": {"<category>": n},       # by `harness.services.base.Category`
     "pending": {sender: [seq, ...]},                # sent here, neither acked nor rejected here
     "presumed": [[room, sender, seq, sent_ns], ...],   # presumed accepted: no echo, no error
     "offered": {room: {"<second>": n}},             # sends per client wall-clock second
     "rejected_per_second": {room: [[second, code, n], ...]},
     "rooms": {room: {"senders": [sender, ...],      # accepted messages known here, sorted by accept time
                      "t": [accept_ns, ...], "s": [sender index, ...], "q": [seq, ...]}},
     "receivers": {receiver: {"duplicates": n, "out_of_order": n, "unexpected": n, "during_handshake": n,
                   "connections": [{"id": membership_id, "room": room, "start": ns, "end": ns,
                                    "open": bool,        # still open at end_ns
                                    "last": ns | None,   # L: highest accept time received in the interval
                                    "own": {sender: n},  # distinct received on it, in its interval
                                    "foreign": [[accept_ns, sender], ...],
                                    # ^ distinct messages of this interval that arrived on another
                                    #   connection of the same receiver (judged against L at merge)
                                    "replay": [window_ns, max] | None,  # the service replays to late joiners
                                    "replayed": n}]}}}   # of them, arrived on this connection

The keys are a contract between the processes of one run: a change of meaning changes `FORMAT`'s
version, and the judge refuses an export of another format.
"""

FORMAT = "chatload.delivery-ledger/1"
