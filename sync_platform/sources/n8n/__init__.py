"""n8n's public REST API: the executions the delivery-gap resync compares with the inbox."""
