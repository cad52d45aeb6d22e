"""The ``ganinv`` command line: a thin typer layer over the library."""
