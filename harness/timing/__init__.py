"""Time without Locust: a worker's clock offset against its master, and send schedules."""
