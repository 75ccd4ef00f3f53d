"""The demo (`python -m demo`, `make demo`): the platform against the source simulator.

A development package at the repository root, like `bench/`: it uses both `sync_platform`
and `sync_platform_simulator`, and ships in neither wheel.
"""
