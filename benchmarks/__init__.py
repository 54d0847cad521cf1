"""Measured figures (not timed tests): one command per benchmark, results in results/."""
