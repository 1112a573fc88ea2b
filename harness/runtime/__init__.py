"""Per process: the loop thread's side and the Locust hub's side of chatload's runtime."""
