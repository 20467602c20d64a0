"""The embedded default: a bundled sample news site and a local SMTP server that keeps
every message as an .eml file, so the whole cycle runs on one machine with no internet."""
