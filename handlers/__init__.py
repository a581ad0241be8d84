"""What happens to each inbound message: one router per module, in priority
order in `handlers/dispatcher.py`; the filters they share in `filters.py`."""
