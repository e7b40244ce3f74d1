"""What a run starts beside the servers under test: the database (the upstream delay service is
started by each backend from ``apps.upstream``)."""
