"""Performance harness: real service processes under closed-loop load, against a baseline."""
