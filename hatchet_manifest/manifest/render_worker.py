"""The entry point of a bounded render worker: `python -P -m hatchet_manifest.manifest.render_worker` (see
hatchet_manifest.manifest.sandbox)."""

if __name__ == "__main__":
    from hatchet_manifest.manifest.render_protocol import worker_main

    worker_main()
