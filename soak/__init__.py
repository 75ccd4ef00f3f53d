"""The soak: the whole platform under the real daemon, with faults, then a verdict."""
