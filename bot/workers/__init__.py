"""Workers: drain the durable queues to the world (providers, webhooks)."""
