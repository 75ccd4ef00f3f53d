"""Dealer feed (EasyCars-style stock and leads): assets, checks, job, schedule."""
