"""`python -m edgeld` is the same as the `edgeld` command."""
from edgeld.cli import main

if __name__ == "__main__":
    main()
