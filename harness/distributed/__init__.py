"""What a master and its workers on other machines share, below both `chatload run` and the Locust plugin."""
