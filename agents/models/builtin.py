"""Import every built-in provider module so that it registers itself."""

from poise.agents.models import api, google, hf_provider, replay  # noqa: F401
