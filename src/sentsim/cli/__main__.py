"""``python -m sentsim.cli`` runs the command line, as ``python -m sentsim`` does."""

from sentsim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
