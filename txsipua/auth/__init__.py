"""txsipua.auth."""
