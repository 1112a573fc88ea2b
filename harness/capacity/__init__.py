"""Stepped capacity search and its report (`chatload capacity`).

    plan      capacity files: a scenario plus [capacity]; one validated scenario per step
    search    runs the steps (each a `chatload run`), stops when the objective breaks, writes the output
    analysis  per-step figures, the knee and its margin, USL fit, load-generator sizing, cost
    usl       the Universal Scalability Law and its least-squares fit (no scipy)
    document  capacity.json (`chatload.capacity/1`);  html  capacity.html
    cli       `chatload capacity SCENARIO`
"""
