"""txsipua.net."""
