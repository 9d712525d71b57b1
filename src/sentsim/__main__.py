"""``python -m sentsim`` (and so ``accelerate launch -m sentsim ...``) runs the command line."""

from sentsim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
