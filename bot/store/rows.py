"""Rows as both backends select them: the column lists, and the builders that
turn a fetched row (a tuple, an sqlite3.Row or an asyncpg Record) into a model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.store.models import DeliveryRow, InstanceActivity, OutboundRow, Registration

OUTBOUND_COLUMNS = ("o.id, o.instance_id, o.to_number, o.group_id, o.type, o.text, o.caption, "
                    "o.filename, o.mime, o.subscriber_id, o.status, o.attempts, "
                    "o.provider_message_id, o.error_code, o.error_title, o.created_at, "
                    "o.updated_at, g.name, o.template, o.pricing_category, o.billable")
OUTBOUND_FROM = ("outbound o LEFT JOIN groups g ON g.instance_id = o.instance_id "
                 "AND g.group_id = o.group_id")


def outbound_row(row: Sequence[Any]) -> OutboundRow:
    return OutboundRow(id=row[0], instance_id=row[1], to=row[2], group_id=row[3], type=row[4],
                       text=row[5], caption=row[6], filename=row[7], mime=row[8],
                       subscriber_id=row[9], status=row[10], attempts=row[11],
                       provider_message_id=row[12], error_code=row[13], error_title=row[14],
                       created_at=row[15], updated_at=row[16], group_name=row[17],
                       template=row[18], pricing_category=row[19],
                       billable=None if row[20] is None else bool(row[20]))


def registration_row(row: Sequence[Any]) -> Registration:
    return Registration(instance_id=row[0], number=row[1], locale=row[2], status=row[3],
                        keyword_subscriber=row[4], registered_at=row[5], updated_at=row[6],
                        opted_out_at=row[7], user_id=row[8], last_inbound_at=row[9])


REG_COLUMNS = ("instance_id, number, locale, status, keyword_subscriber, registered_at, "
               "updated_at, opted_out_at, user_id, last_inbound_at")


DELIVERY_COLUMNS = ("id, subscriber_id, endpoint_key, url, format, event_type, payload, status,"
                    " attempts, next_attempt_at, last_status_code, last_error, created_at,"
                    " updated_at, delivered_at")


def delivery_row(r: Sequence[Any]) -> DeliveryRow:
    return DeliveryRow(id=r[0], subscriber_id=r[1], endpoint_key=r[2], url=r[3], format=r[4],
                       event_type=r[5], payload=r[6], status=r[7], attempts=r[8],
                       next_attempt_at=r[9], last_status_code=r[10], last_error=r[11],
                       created_at=r[12], updated_at=r[13], delivered_at=r[14])


def like_escaped(text: str) -> str:
    """`text` for a LIKE pattern with ESCAPE '\\': its wildcards taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def instance_activity(inbound: dict[int, list[int]], outbound: dict[int, list[int]],
                      queued: Sequence[Sequence[Any]], buckets: int) -> list[InstanceActivity]:
    """Each instance's activity from its counts per bucket (instance -> counts)
    and its queue (rows of instance, queued, oldest queued at), by instance."""
    queues = {r[0]: (r[1], r[2]) for r in queued}
    empty = (0,) * buckets
    return [InstanceActivity(instance_id=i, inbound=tuple(inbound.get(i, empty)),
                             outbound=tuple(outbound.get(i, empty)),
                             queued=queues.get(i, (0, None))[0],
                             oldest_queued_at=queues.get(i, (0, None))[1])
            for i in sorted({*inbound, *outbound, *queues})]


# provider_notices, in NoticeRow's order.
NOTICE_COLUMNS = "seq, provider, kind, instance_id, event, detail, at, received_at"
