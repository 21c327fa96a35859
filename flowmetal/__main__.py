"""`python -m flowmetal` is the `fm` command."""
from flowmetal.cli import main

if __name__ == "__main__":
    main()
