"""Every Redis key name this project uses. No other module builds key strings.

Layout (``p`` = prefix, default ``ep:``)::

    p cameras                    SET of camera ids
    p camera:{id}                HASH, one JSON-encoded value per CameraConfig field
    p registry:version           INT, incremented on every registry change
    p health:{id}                HASH with TTL, JSON-encoded values
    p counters:{id}              HASH of integer counters (``_all`` = not camera specific)
    p faces                      STREAM of FaceCrop messages, field ``d``
    p faces:dead                 STREAM of dead-lettered entries
    p faces:done:{minute}        SET of processed message ids, by the minute the id was minted, TTL
    p agg:{id}:{s|m}:{bucket}    HASH: faces, n:{label}, p:{label}; TTL
    p agg:{id}:{s|m}:{bucket}:t  SET of track ids seen in the bucket; TTL
    p track:{id}:{track}         HASH: EMA state of one track; TTL
    p recent:{id}                LIST of encoded EmotionResult, newest first; TTL
    p meta:{id}                  HASH: model, last_ts of the newest result; TTL
    p latency:{id}               LIST of capture->committed latencies (s), newest first, capped; TTL
    p latency:_all               the same over all cameras
    p classifier:hist            HASH: batch-size and inference-time histograms (bucket counts, sum, count)
    p alerts                     HASH: alert rule id -> JSON rule
    p alert:{id}:state           HASH: active (0/1), last_fired, last_value, last_eval
    p alert:{id}:events          LIST of JSON firing events, newest first, capped
    p alerts:lease               STRING: owner of the evaluator lease (SET NX PX)
    p snapshot:{id}              STRING: latest annotated JPEG of an opted-in camera (keep_frames); short TTL
"""

from __future__ import annotations

from dataclasses import dataclass

#: Counter scope for events that belong to no (known) camera, e.g. undecodable messages.
#: Camera ids cannot start with ``_``, so this never collides.
GLOBAL_SCOPE = "_all"

#: Field of a faces-stream entry that holds the msgpack payload.
PAYLOAD_FIELD = b"d"

#: Consumer group of the classifiers on the faces stream.
CLASSIFIER_GROUP = "classifiers"

@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder bound to one prefix."""

    prefix: str = "ep:"

    # -- registry ---------------------------------------------------------------
    @property
    def cameras(self) -> str:
        return f"{self.prefix}cameras"

    def camera(self, camera_id: str) -> str:
        return f"{self.prefix}camera:{camera_id}"

    @property
    def registry_version(self) -> str:
        return f"{self.prefix}registry:version"

    def health(self, camera_id: str) -> str:
        return f"{self.prefix}health:{camera_id}"

    def counters(self, scope: str) -> str:
        return f"{self.prefix}counters:{scope}"

    # -- streams ----------------------------------------------------------------
    @property
    def faces(self) -> str:
        return f"{self.prefix}faces"

    @property
    def dead(self) -> str:
        return f"{self.prefix}faces:dead"

    def done(self, msg_id: bytes | str) -> str:
        """Idempotency set for a message id, sharded by the minute the id was minted."""
        raw = msg_id.decode() if isinstance(msg_id, bytes) else msg_id
        ms = int(raw.split("-", 1)[0])
        return f"{self.prefix}faces:done:{ms // 60_000}"

    # -- aggregates -------------------------------------------------------------
    def bucket(self, camera_id: str, resolution: str, bucket: int) -> str:
        return f"{self.prefix}agg:{camera_id}:{resolution}:{bucket}"

    def bucket_tracks(self, camera_id: str, resolution: str, bucket: int) -> str:
        return f"{self.prefix}agg:{camera_id}:{resolution}:{bucket}:t"

    def track(self, camera_id: str, track_id: int) -> str:
        return f"{self.prefix}track:{camera_id}:{track_id}"

    def recent(self, camera_id: str) -> str:
        return f"{self.prefix}recent:{camera_id}"

    def meta(self, camera_id: str) -> str:
        return f"{self.prefix}meta:{camera_id}"

    def latency(self, scope: str) -> str:
        """Latency samples of a camera, or of all cameras with :data:`GLOBAL_SCOPE`."""
        return f"{self.prefix}latency:{scope}"

    # -- classifier ---------------------------------------------------------------
    @property
    def classifier_hist(self) -> str:
        return f"{self.prefix}classifier:hist"

    # -- alerts -------------------------------------------------------------------
    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    def alert_state(self, rule_id: str) -> str:
        return f"{self.prefix}alert:{rule_id}:state"

    def alert_events(self, rule_id: str) -> str:
        return f"{self.prefix}alert:{rule_id}:events"

    @property
    def alerts_lease(self) -> str:
        return f"{self.prefix}alerts:lease"

    # -- snapshots (dashboard, opt-in per camera) -------------------------------------
    def snapshot(self, camera_id: str) -> str:
        return f"{self.prefix}snapshot:{camera_id}"
