"""The embedded Smart ID lab: Identity Manager, Smart ID Messaging and Certificate Manager on
127.0.0.1 with real TLS and state on disk, the suite's reference target (docs/lab.md)."""
