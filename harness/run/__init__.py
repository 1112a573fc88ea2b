"""`chatload run`: one scenario end to end, its child processes and workers on other machines."""
