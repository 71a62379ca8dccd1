"""``/groups``: camera groups (from each camera's ``groups`` list) and their merged summaries."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from pipeline.aggregate.summary import Summary, merge_summaries
from pipeline.api.deps import StoreDep
from pipeline.api.params import WindowQuery, window_seconds
from pipeline.api.schemas import GroupOut
from pipeline.store.models import GROUP_PATTERN
from pipeline.store.redis_store import RedisStore

router = APIRouter(prefix="/groups", tags=["groups"])

GroupName = Annotated[str, Path(pattern=GROUP_PATTERN, description="Group name.")]


def _members(store: RedisStore, name: str) -> list[str]:
    members = sorted(c.id for c in store.list_cameras() if name in c.groups)
    if not members:
        raise HTTPException(404, detail=f"no camera is in group {name!r}")
    return members


@router.get("", response_model=list[GroupOut])
def list_groups(store: StoreDep) -> list[GroupOut]:
    """Every group some camera belongs to, with its members, sorted by name."""
    members: dict[str, list[str]] = defaultdict(list)
    for cam in sorted(store.list_cameras(), key=lambda c: c.id):
        for group in cam.groups:
            members[group].append(cam.id)
    return [GroupOut(name=name, cameras=ids) for name, ids in sorted(members.items())]


@router.get("/{name}", response_model=GroupOut)
def get_group(name: GroupName, store: StoreDep) -> GroupOut:
    """One group's members; 404 when no camera is in it."""
    return GroupOut(name=name, cameras=_members(store, name))


@router.get("/{name}/summary", response_model=Summary)
def group_summary(name: GroupName, store: StoreDep, window: WindowQuery = "60") -> Summary:
    """The members' summaries merged: counts add up, mean probabilities are face-weighted.

    ``camera_id`` of the result is ``group:<name>``; tracks keep their own camera id.
    """
    seconds = window_seconds(window)
    now = time.time()  # one window end for every member
    summaries = [store.summary(camera_id, seconds, now) for camera_id in _members(store, name)]
    return merge_summaries(f"group:{name}", summaries)
