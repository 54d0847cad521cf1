"""api: the job API server (``api.server``) and the ``dino`` command line (``api.cli``)."""
