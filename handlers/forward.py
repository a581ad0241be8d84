"""Every inbound message is offered to subscriber webhooks (greetings and STOP too)."""

from __future__ import annotations

from bot.dispatch import ANY, Context, Router
from bot.events import InboundMessage
from bot.media_links import media_id_for

router = Router(name="forward", observe=True)


@router.message(ANY)
async def forward(msg: InboundMessage, ctx: Context, _match: bool) -> None:
    data: dict[str, object] = {
        "id": f"{msg.provider}:{msg.provider_message_id}",
        "instance_id": msg.instance_id,
        "gateway_number": ctx.instance.number,
        "from": msg.sender,
        "type": msg.kind,
        "text": msg.text,
        "profile_name": msg.profile_name,
        "timestamp": msg.timestamp,
    }
    data.update(msg.details)  # what the kind adds: location, reaction, ...
    if msg.media is not None:
        # Ours, not the provider's: /media/{id}. Size, digest and link join it
        # at delivery, once the file is fetched (bot/workers/webhooks.py).
        data["media"] = {"id": media_id_for(msg.provider, msg.provider_message_id),
                         "mime_type": msg.media.mime_type}
        if msg.media.filename:
            data["media"]["filename"] = msg.media.filename
    if msg.context:
        data["context"] = dict(msg.context)
    if msg.user_id:
        data["user_id"] = msg.user_id
    if msg.group is not None:
        data["group"] = {"id": msg.group.id, "name": msg.group.name or (
            ctx.state.group.name if ctx.state.group else None)}
    ctx.emit("message.received", data)
