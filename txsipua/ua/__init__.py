"""txsipua.ua."""
