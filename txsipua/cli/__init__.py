"""txsipua.cli."""
