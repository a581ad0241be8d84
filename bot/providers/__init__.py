"""Transports. Each provider parses its inbound payloads into normalized events
and sends outbound messages, answering a provider message id or an error."""
