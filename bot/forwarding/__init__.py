"""Forwarding to subscriber webhooks: who gets an event (routing), what it looks
like on the wire (payloads and signatures), and where we refuse to send it
(safety). The deliverer itself is `bot.workers.webhooks`."""
