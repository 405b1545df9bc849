"""``python -m zoo ...``: the same command line as ``zoo ...`` (what ``torchrun -m zoo`` runs)."""

from zoo.cli import main

if __name__ == "__main__":
    main()
