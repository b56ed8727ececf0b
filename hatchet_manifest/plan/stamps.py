"""The metadata every applied run carries, by which the engine is asked what it already holds.

`key` and `manifest` find a run; `digest` says what it was sent with, so that a run adopted from the engine (no
ledger row) is compared with the manifests by what the engine holds, not by what is declared now.
"""

STAMP_KEY = "hatchet-manifest/key"
STAMP_MANIFEST = "hatchet-manifest/manifest"
STAMP_DIGEST = "hatchet-manifest/digest"
# Crons, schedules and events carry the manifest under another name than runs do: the runs they start inherit
# their metadata, and must not count among the manifest's own runs (status, the engine lookup of runs).
STAMP_TRIGGER_MANIFEST = "hatchet-manifest/trigger-of"
STAMPS = (STAMP_KEY, STAMP_MANIFEST, STAMP_DIGEST, STAMP_TRIGGER_MANIFEST)

# Keys the engine adds to run metadata by itself (a W3C trace context on every run; cron and event details).
ENGINE_KEYS = ("traceparent", "tracestate")
ENGINE_PREFIX = "hatchet__"


def user_metadata(metadata: dict[str, object]) -> dict[str, object]:
    """A run's metadata as the manifests set it: without our stamps and the keys the engine adds."""
    return {
        k: v
        for k, v in metadata.items()
        if k not in STAMPS and k not in ENGINE_KEYS and not k.startswith(ENGINE_PREFIX)
    }


def stamps(key: str, manifest: str, digest: str) -> dict[str, str]:
    return {STAMP_KEY: key, STAMP_MANIFEST: manifest, STAMP_DIGEST: digest}


def trigger_stamps(key: str, manifest: str, digest: str) -> dict[str, str]:
    """A cron's, schedule's or event's stamps (and so those of every run it starts)."""
    return {STAMP_KEY: key, STAMP_TRIGGER_MANIFEST: manifest, STAMP_DIGEST: digest}
