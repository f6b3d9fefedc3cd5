# The conformance plugin: options, inventory-driven parametrization and the sinks.
pytest_plugins = ["conformance.plugin"]
