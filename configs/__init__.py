"""The configs drivestack ships: one YAML file per verb, the simulator section and the route suites."""
