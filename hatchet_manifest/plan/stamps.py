"""The metadata every applied run carries, by which the engine is asked what it already holds."""

STAMP_KEY = "hatchet-manifest/key"
STAMP_MANIFEST = "hatchet-manifest/manifest"
STAMPS = (STAMP_KEY, STAMP_MANIFEST)
