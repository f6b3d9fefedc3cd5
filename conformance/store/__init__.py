"""The system database: the seed's planned tables, the run history, and the shared bulletin."""
