"""The core's own methods, registered through the core's entry points like any plugin's."""
