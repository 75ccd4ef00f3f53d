"""Alerting, one package: the alert store (`store`: raise, resolve, acknowledge, deliver), the
rules that decide when a condition holds (`rules`), the channels that reach a person
(`channels`), and the health report (`health`).

The engine and the platform's jobs raise and resolve alerts through `store`; nothing else
writes the alerts table.
"""
