"""The results of one run: merged, judged (verdicts, did it measure anything) and written as JSON."""
