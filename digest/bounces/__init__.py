"""Bounces and complaints that arrive after the SMTP conversation: the envelope sender
that names each delivery (VERP), and reading the reports mailed back to it."""
