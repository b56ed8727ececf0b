"""The entry point of a parallel apply's render worker: `python -m hatchet_manifest.shard_worker` (see
hatchet_manifest.parallel)."""

if __name__ == "__main__":
    from hatchet_manifest.parallel import main

    main()
