"""The webhook inbox (`webhook_inbox`, `webhook_rejections`): the one package that reads and
writes those tables.

- `store`: the receiver stores deliveries and rejections; the gap resync stores deliveries the
  receiver never got;
- `processing`: the event assets take a workflow's pending deliveries as records and mark
  them processed or quarantined in the load transaction; the sensor asks what is pending;
- `queries`: what the inbox already holds (gap resync, backup rule).
"""

from sync_platform.warehouse.platform_tables import webhook_inbox, webhook_rejections

TABLES = (webhook_inbox.name, webhook_rejections.name)  # what an inbox backup holds
