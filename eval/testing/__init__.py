"""Local stand-ins for model servers, for tests and ``poise bench``: never used by a run."""
