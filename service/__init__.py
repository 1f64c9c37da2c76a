"""The hypevolve service: REST API, settings, SQL tables and the study controller."""
