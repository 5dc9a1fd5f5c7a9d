"""CRM API emulators served over loopback for the connector tests."""
