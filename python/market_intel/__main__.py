"""Run the command line: ``python -m market_intel``."""

from market_intel.cli import main

if __name__ == "__main__":
    main()
