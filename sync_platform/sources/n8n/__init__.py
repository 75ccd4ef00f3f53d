"""n8n: the webhook inbox as a source of events, and the executions API the gap resync reads."""
