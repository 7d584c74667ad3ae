"""channels-redis' pub/sub layer, telling the process's sockets when Redis came back.

Pub/sub keeps nothing: what is published while a process's subscription is down (Redis
restarting, a network cut) never reaches it, and its sockets would stay open on a stale
state with nothing to tell them. This layer notices the subscription failing and, once
it reads again (redis-py has reconnected and subscribed anew), delivers
``{"type": "layer.resync"}`` to every channel of the process; consumers answer it by
catching up from the database (the job events they missed, a fresh snapshot) and by
checking again that their access still holds (a revoke sent meanwhile was lost too).

It subclasses channels-redis 4.3's ``RedisPubSubChannelLayer`` (pinned), replacing the
shard's receive loop, which is otherwise the library's own.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels_redis.pubsub import (
    RedisPubSubChannelLayer,
    RedisPubSubLoopLayer,
    RedisSingleShardConnection,
)
from channels_redis.utils import _wrap_close, decode_hosts

logger = logging.getLogger(__name__)

RESYNC = {"type": "layer.resync"}


class _ResyncingShard(RedisSingleShardConnection):
    async def _do_receiving(self) -> None:
        lost = False
        while True:
            try:
                if self._pubsub and self._pubsub.subscribed:
                    message = await self._pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=0.1)
                    if lost:
                        lost = False
                        logger.info("channel layer: Redis is back; asking %d socket(s) to "
                                    "catch up", len(self.channel_layer.channels))
                        self._resync()
                    self._receive_message(message)
                else:
                    await asyncio.sleep(0.1)
            except (TimeoutError, asyncio.CancelledError, GeneratorExit):
                raise
            except Exception:
                if not lost:
                    logger.warning("channel layer: lost Redis; sockets catch up once it is "
                                   "back", exc_info=True)
                lost = True
                await asyncio.sleep(1)

    def _resync(self) -> None:
        data = self.channel_layer.channel_layer.serialize(RESYNC)
        for queue in list(self.channel_layer.channels.values()):
            queue.put_nowait(data)


class _ResyncingLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, hosts: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(hosts, *args, **kwargs)
        self._shards = [_ResyncingShard(host, self) for host in decode_hosts(hosts)]


class ResyncingPubSubChannelLayer(RedisPubSubChannelLayer):
    def _get_layer(self) -> RedisPubSubLoopLayer:
        loop = asyncio.get_running_loop()
        try:
            return self._layers[loop]
        except KeyError:
            layer = _ResyncingLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            _wrap_close(self, loop)
            return layer
