"""n8n webhooks: event tables typed from the webhook inbox, and the delivery-gap resync from the
n8n executions API."""
