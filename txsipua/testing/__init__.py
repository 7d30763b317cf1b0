"""txsipua.testing."""
