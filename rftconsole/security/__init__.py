"""What protects the console: encryption at rest (crypto, fields, key_rotation), sign-in
throttling and its lockout page (accounts, sign_in), the audit log, API-key authentication and
scopes, the guarded client for every URL a user can aim (outbound), and the websocket origin check.

Imports: rftconsole helpers and Django; key_rotation alone imports the apps' models, since it
re-encrypts their rows.
"""
