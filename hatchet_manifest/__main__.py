from hatchet_manifest.cli import main

main()
