"""The entry point the design card names: the Typer app is built in zoo/cli/ (one module per command group)."""
from zoo.cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
