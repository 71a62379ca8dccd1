"""FastAPI dependencies: the settings and the store live on ``app.state`` (set by ``create_app``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from pipeline.settings import Settings
from pipeline.store.redis_store import RedisStore


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> RedisStore:
    store: RedisStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[RedisStore, Depends(get_store)]
