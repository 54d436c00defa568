"""The ``neuralrec`` command-line tool."""
