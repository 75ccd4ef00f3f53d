"""Alerting beyond storage: delivery channels, the rules that raise alerts, the health report.

`engine/alerts.py` stores alerts (one open alert per condition); this package decides
when conditions hold and gets the word to a person.
"""
