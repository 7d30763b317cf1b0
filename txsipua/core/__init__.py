"""txsipua.core."""
